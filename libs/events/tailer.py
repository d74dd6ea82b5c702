"""The loop shared by workers that tail the global log (the relay, projection runners)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

# When woken by a commit, wait this long before reading, so that the commits of a busy
# moment share one page (one transaction, one round of statements) instead of one each.
LINGER_SECONDS = 0.01
# An idle poll that finds nothing doubles the wait before the next one, up to this.
IDLE_MAX_SECONDS = 1.0


class LogTailer:
    """Calls :meth:`step` until stopped: at once while pages come back full; otherwise after
    a :meth:`nudge` (plus ``linger_seconds``, to gather the commits of a busy moment into
    one page) or a poll.

    Commits made in this process nudge; a poll finds the rest (another process's commits,
    events the gap-safe horizon held back). Polls start ``idle_seconds`` apart and double
    while they find nothing, up to ``idle_max_seconds``; any page with events, or a nudge,
    brings them back to ``idle_seconds``. A failing step is logged and retried with backoff.
    (docs/decisions/0037-the-path-of-a-registration.md)
    """

    def __init__(self, *, name: str, batch_size: int, idle_seconds: float,
                 idle_max_seconds: float = IDLE_MAX_SECONDS,
                 linger_seconds: float = LINGER_SECONDS) -> None:
        self.name = name
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.idle_max_seconds = max(idle_max_seconds, idle_seconds)
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        self._stopping = False

    async def step(self) -> int:
        """Handle one page of the log; return how many events it held."""
        raise NotImplementedError

    async def catch_up(self) -> int:
        """Handle pages until the log has nothing more to give; returns the events read."""
        total = 0
        while n := await self.step():
            total += n
        return total

    def nudge(self) -> None:
        """New events were committed: do not wait for the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the page in flight, then leave :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.1
        idle = self.idle_seconds
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
            if n >= self.batch_size:
                continue
            idle = self.idle_seconds if n else min(idle * 2, self.idle_max_seconds)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle)
                idle = self.idle_seconds
                if self.linger_seconds > 0 and not self._stopping:
                    await asyncio.sleep(self.linger_seconds)
