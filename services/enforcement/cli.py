"""Command-line entries of the enforcement service::

    python -m services.enforcement.cli sweep --now 2027-06-01T00:00:00Z
    python -m services.enforcement.cli verify-manifest manifest.json report.xlsx \
        [--public-key HEX]
    python -m services.enforcement.cli check-policy services/enforcement/measure-policies/x.json

``sweep`` lifts the measures whose time is up (A19.2) outside the app (no broker needed).
``verify-manifest`` checks a report manifest's Ed25519 signature and the SHA-256 of each
file given (exit status 1 if anything differs). ``check-policy`` validates a policy
document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from libs.runtime.cli import add_now, sweep_offline

from . import rules, sweep
from .bootstrap import bootstrap
from .settings import Settings


def verify(manifest_path: str, files: list[str], public_key: str | None) -> int:
    raw = Path(manifest_path).read_text()
    try:
        signed = json.loads(raw)
    except json.JSONDecodeError:  # the header's base64 form, saved as is
        import base64

        signed = json.loads(base64.b64decode(raw))
    try:
        rules.verify_manifest(signed, {Path(f).name: Path(f).read_bytes() for f in files},
                              public_key=public_key)
    except rules.ManifestError as exc:
        print(f"INVALID: {exc}")
        return 1
    print(f"OK: signature by {signed['public_key']}; {len(files)} file(s) match; "
          f"event position {signed['event_position']}, generated {signed['generated_at']}")
    return 0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m services.enforcement.cli",
                                description="Command-line entries of the enforcement service.")
    commands = p.add_subparsers(dest="command", required=True)
    s = commands.add_parser("sweep", help="lift measures whose time is up (A19.2)")
    add_now(s)
    v = commands.add_parser("verify-manifest", help="check a report manifest's signature "
                                                    "and its files' digests")
    v.add_argument("manifest", help="manifest.json (or the Enforcement-Manifest header saved)")
    v.add_argument("files", nargs="*", help="files of the report, named as in the manifest")
    v.add_argument("--public-key", default=None,
                   help="the expected signing key (hex; GET /v1/reports/signing-key)")
    c = commands.add_parser("check-policy", help="validate a measure-policy document")
    c.add_argument("path")
    args = p.parse_args(argv)
    if args.command == "sweep":
        report = asyncio.run(sweep_offline(Settings(), bootstrap, args.now, sweep.run))
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif args.command == "verify-manifest":
        sys.exit(verify(args.manifest, args.files, args.public_key))
    else:
        policy = rules.load_policy(Path(args.path).read_bytes())
        print(f"OK: {policy.policy_id} version {policy.version}, {len(policy.rules)} rules, "
              f"sha256 {policy.sha256}")


if __name__ == "__main__":
    main()
