"""Command-line entries of the transfer service::

    python -m services.transfer.cli sweep --now 2027-06-01T00:00:00Z

``sweep`` expires applications still open past their deadline and completes confirmed
transfers whose followers' opt-out period is over (A11.2), outside the app.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from libs.runtime.cli import add_now, sweep_offline

from . import sweep
from .bootstrap import bootstrap
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.transfer.cli",
                                description="Command-line entries of the transfer service.")
    commands = p.add_subparsers(dest="command", required=True)
    add_now(commands.add_parser(
        "sweep", help="expire applications past their deadline; complete transfers whose "
                      "followers' opt-out period is over"))
    args = p.parse_args(argv)
    report = asyncio.run(sweep_offline(Settings(), bootstrap, args.now, sweep.run))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
