"""``python -m ops.rolematrix``: print the role matrix of the five services (the table in
the README's "Who may call what"), generated from their route tables
(:mod:`libs.runtime.rolematrix`)."""

from __future__ import annotations

import importlib

from fastapi import FastAPI

from libs.events.topics import SERVICES
from libs.runtime.rolematrix import markdown, matrix


def apps() -> dict[str, FastAPI]:
    """The five services' apps (importing one builds no runtime: that is the lifespan's)."""
    return {s: importlib.import_module(f"services.{s}.main").app for s in SERVICES}


def main() -> None:
    print(markdown(matrix(apps())), end="")


if __name__ == "__main__":
    main()
