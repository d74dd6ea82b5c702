"""Output for people (Rich tables) or scripts (``--json``), and masking of personal data."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from libs.runtime.pii import Sealer, SealError, subjects_in

console = Console()
err = Console(stderr=True)

SEALED = "«sealed»"
SUFFIX = "_sealed"


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(data, default=str,
                                      option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
                                      ).decode() + "\n")
    else:
        render(data)


def mask(data: Any, *, sealer: Sealer | None = None, opened: set[str] | None = None,
         subjects: list[str] | None = None) -> Any:
    """``data`` with every ``*_sealed`` value replaced by ``«sealed»``, or, given a sealer
    (``--reveal``), by its opened value; the names of opened fields go into ``opened``.
    A value opens for its data subject (ADR 0033): one of the blind indexes or case ids
    ``data`` names (``subjects_in``)."""
    if subjects is None and sealer is not None:
        subjects = subjects_in(data)
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if isinstance(k, str) and k.endswith(SUFFIX) and isinstance(v, str):
                if sealer is None:
                    out[k] = SEALED
                else:
                    try:
                        out[k] = sealer.open_any(v, subjects or [])
                        if opened is not None:
                            opened.add(k)
                    except SealError:  # another key, another subject, or not sealed at all
                        out[k] = "«cannot open»"
            else:
                out[k] = mask(v, sealer=sealer, opened=opened, subjects=subjects)
        return out
    if isinstance(data, list):
        return [mask(v, sealer=sealer, opened=opened, subjects=subjects) for v in data]
    return data


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool
             ) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr (not with ``--json``); yields ``advance(n)``."""
    if not enabled:
        yield lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def short(value: Any, width: int = 100) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "…"
