"""Command-line entries of the registration service.

    python -m services.registration.cli sweep --now 2027-06-01T00:00:00Z

``sweep`` runs the clock's decisions once (inactivity A10.2, correction deadlines A8.2,
timed measures A19.2) on the service's database, read models caught up first; no broker
is needed. It prints what it did.
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
    p = argparse.ArgumentParser(prog="python -m services.registration.cli",
                                description="Commands of the registration service.")
    commands = p.add_subparsers(dest="command", required=True)
    add_now(commands.add_parser("sweep", help=sweep.__doc__.split("\n\n")[0]))
    args = p.parse_args(argv)
    if args.command == "sweep":
        report = asyncio.run(sweep_offline(Settings(), bootstrap, args.now, sweep.run))
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
