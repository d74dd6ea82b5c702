import hashlib
from pathlib import Path

from pydantic import Field, model_validator

from libs.runtime.settings import ServiceSettings

POLICY_FILE = str(Path(__file__).with_name("measure-policies") / "measure-policy-v1.json")
# Development only: the report-signing key is derived from this text (refused elsewhere).
DEV_SIGNING_SEED = "development-only-enforcement-report-signing-key"
DEV_SIGNING_KEY = hashlib.sha256(DEV_SIGNING_SEED.encode()).hexdigest()


class Settings(ServiceSettings):
    """Read from ``ENFORCEMENT_<FIELD>`` (``ENFORCEMENT_APPEAL_WINDOW_DAYS``...)."""

    service: str = "enforcement"
    port: int = 8005
    # A19.2 / A7.3: the measure policy in force (a JSON document, validated at start)
    policy_file: str = POLICY_FILE
    # A20.2: how long after a measure starts its account may appeal, and the answer's
    # deadlines in Chinese working days
    appeal_window_days: int = Field(30, ge=1)
    appeal_working_days: int = Field(7, ge=1)
    complaint_working_days: int = Field(10, ge=1)
    # Ed25519 private key (32 bytes, hex) signing report manifests (A19.2, A21.2)
    report_signing_key: str = DEV_SIGNING_KEY
    # how often the app lifts expired measures (0: never; the command still works)
    sweep_interval_seconds: float = 300

    @model_validator(mode="after")
    def _no_dev_key_in_production(self) -> "Settings":
        if self.environment != "development" and self.report_signing_key == DEV_SIGNING_KEY:
            raise ValueError("ENFORCEMENT_REPORT_SIGNING_KEY is the development key: set a "
                             "private Ed25519 key (64 hex digits) outside development")
        return self
