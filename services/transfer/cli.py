"""Command-line entries of the transfer service::

    python -m services.transfer.cli sweep --now 2027-06-01T00:00:00Z

``sweep`` expires applications still open past their deadline and completes confirmed
transfers whose followers' opt-out period is over (A11.2), outside the app.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from libs.runtime.cli import add_now, clock_of_run

from . import sweep
from .bootstrap import bootstrap
from .settings import Settings


async def _sweep(now) -> dict:
    settings = Settings()
    now = clock_of_run(now, settings.environment)  # development only (A10.2)
    async with bootstrap(settings).offline() as runtime:
        report = await sweep.run(runtime.deps, now=now)
    return report.model_dump(mode="json")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.transfer.cli",
                                description="Command-line entries of the transfer service.")
    commands = p.add_subparsers(dest="command", required=True)
    add_now(commands.add_parser(
        "sweep", help="expire applications past their deadline; complete transfers whose "
                      "followers' opt-out period is over"))
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(_sweep(args.now)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
