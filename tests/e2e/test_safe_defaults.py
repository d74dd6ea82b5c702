"""Production is the default (hardening): a service started without ``ENVIRONMENT`` refuses
the development defaults published in the repository and names every variable it needs;
with them set it gets past its settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registration", "verification", "transfer", "credit", "enforcement")
CHECK = ("import importlib, sys; b = importlib.import_module(f'services.{sys.argv[1]}.bootstrap');"
         " b.bootstrap(); print('started')")


def _start(service: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ENVIRONMENT", "AUTH_SECRET", "PII_KEY", "DATABASE_URL")
             and not k.endswith("_DATABASE_URL")}
    return subprocess.run([sys.executable, "-c", CHECK, service], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_without_environment_refuses_the_development_defaults(service):
    out = _start(service)
    assert out.returncode != 0 and "started" not in out.stdout
    for variable in (f"{service.upper()}_DATABASE_URL", "AUTH_SECRET", "PII_KEY"):
        assert variable in out.stderr, out.stderr[-2000:]


def test_development_defaults_apply_only_when_asked_for_and_real_secrets_pass():
    assert _start("credit", ENVIRONMENT="development").returncode == 0
    real = _start("credit", ENVIRONMENT="production", AUTH_SECRET="s" * 40,
                  PII_KEY="k" * 40,
                  CREDIT_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    assert real.returncode == 0, real.stderr[-2000:]
    weak = _start("credit", ENVIRONMENT="staging", AUTH_SECRET="short", PII_KEY="k" * 40,
                  CREDIT_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    assert weak.returncode != 0 and "AUTH_SECRET" in weak.stderr
    assert "PII_KEY" not in weak.stderr.split("needs:")[-1]
