"""Command-line entries of the credit service::

    python -m services.credit.cli sweep --now 2027-06-01T00:00:00Z

``sweep`` rescores every account at ``--now`` (clean days, ageing, expiries) outside the app
(no broker needed).
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
    p = argparse.ArgumentParser(prog="python -m services.credit.cli",
                                description="Command-line entries of the credit service.")
    commands = p.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sweep", help="rescore every account (A13.1, A13.2)")
    add_now(s)
    args = p.parse_args(argv)
    report = asyncio.run(sweep_offline(Settings(), bootstrap, args.now, sweep.run))
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
