"""The loop shared by workers that tail the global log (the relay, projection runners)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class LogTailer:
    """Calls :meth:`step` until stopped: at once while pages come back full, otherwise after
    ``idle_seconds`` or a :meth:`nudge`; a failing step is logged and retried with backoff."""

    def __init__(self, *, name: str, batch_size: int, idle_seconds: float) -> None:
        self.name = name
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._stopping = False

    async def step(self) -> int:
        """Handle one page of the log; return how many events it held."""
        raise NotImplementedError

    def nudge(self) -> None:
        """New events were committed: do not wait for the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the page in flight, then leave :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                n = await self.step()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying in %.1fs", self.name, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_seconds)
