"""Command-line entries of the verification service, with an injectable clock::

    python -m services.verification.cli sweep --now 2027-06-01T00:00:00Z [--fraction 0.1 --seed 7]

``sweep`` expires qualifications past their validity and re-inspects the accounts due and
a random sample (A9.1, A5, A9.3), outside the app: the database migrated and the read
models caught up first; no broker needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from functools import partial

from libs.runtime.cli import add_now, sweep_offline

from . import sweep
from .bootstrap import bootstrap
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.verification.cli",
                                description="Command-line entries of the verification service.")
    commands = p.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sweep", help="expire qualifications, run due and sampled "
                                          "re-inspections (A9.1, A5, A9.3)")
    add_now(s)
    s.add_argument("--fraction", type=float, default=None, help="random sample share")
    s.add_argument("--seed", type=int, default=None, help="seed of the random sample")
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(sweep_offline(Settings(), bootstrap, args.now, partial(
        sweep.run, fraction=args.fraction, seed=args.seed))), indent=2,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
