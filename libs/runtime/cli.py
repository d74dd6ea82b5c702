"""What the services' commands share: the injectable clock as a command-line argument."""

from __future__ import annotations

import argparse
from datetime import datetime


def utc_time(value: str) -> datetime:
    """An ISO 8601 time with its zone (``2027-06-01T00:00:00Z``); a naive time is refused,
    since the clock of a sweep must not depend on the machine's zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("needs a time zone, e.g. 2027-06-01T00:00:00Z")
    return when


def add_now(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", type=utc_time, default=None,
                        help="the clock of this run, e.g. 2027-06-01T00:00:00Z (default: now)")
