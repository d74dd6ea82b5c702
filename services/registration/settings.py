"""Registration's settings. Each is read from ``REGISTRATION_<FIELD>``
(``REGISTRATION_SWEEP_INTERVAL_SECONDS``, libs.runtime.settings); the alias is the older
name, still honoured when the prefixed one is not set."""

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from libs.runtime.settings import ServiceSettings
from libs.screening import DEFAULT_AFFIXES


class CategoryLimit(BaseModel):
    """Accounts per identity in one category: extra verification from ``threshold``
    accounts on, refusal at ``limit``."""

    threshold: int = Field(ge=0)
    limit: int = Field(ge=1)

    @model_validator(mode="after")
    def _threshold_below_limit(self) -> "CategoryLimit":
        if self.threshold > self.limit:
            raise ValueError("the extra-verification threshold cannot exceed the limit")
        return self


class Settings(ServiceSettings):
    service: str = "registration"
    port: int = 8001
    # Registrations that arrive together share one transaction (writer.py, ADR 0040);
    # false: each in its own. Only on PostgreSQL.
    group_commit: bool = Field(True, validation_alias="REGISTRATION_GROUP_COMMIT")
    # A6: the platform agreement a registration must accept.
    agreement_version: str = Field("2025-01", validation_alias="AGREEMENT_VERSION")
    # A10.1 limits, per entity type: extra verification from `threshold` accounts on,
    # refusal at `limit`; and accounts per phone number.
    limit_natural_person: int = Field(2, validation_alias="LIMIT_NATURAL_PERSON")
    threshold_natural_person: int = Field(1, validation_alias="THRESHOLD_NATURAL_PERSON")
    limit_legal_person: int = Field(5, validation_alias="LIMIT_LEGAL_PERSON")
    threshold_legal_person: int = Field(2, validation_alias="THRESHOLD_LEGAL_PERSON")
    limit_unincorporated: int = Field(5, validation_alias="LIMIT_UNINCORPORATED")
    threshold_unincorporated: int = Field(2, validation_alias="THRESHOLD_UNINCORPORATED")
    limit_phone: int = Field(5, validation_alias="LIMIT_PHONE")
    # A10.1 limits of the fields that need more than their entity type's (README: the
    # reasons); JSON, e.g. REGISTRATION_CATEGORY_LIMITS='{"news": {"threshold": 5, "limit": 20}}'.
    category_limits: dict[str, CategoryLimit] = Field(default_factory=lambda: {
        "government_affairs": CategoryLimit(threshold=10, limit=50),
        "news": CategoryLimit(threshold=5, limit=20)})
    # A10.3: registrations per key within the window: held for review / refused from.
    velocity_window_seconds: int = Field(600, validation_alias="VELOCITY_WINDOW_SECONDS")
    velocity_hold_after: int = Field(4, validation_alias="VELOCITY_HOLD_AFTER")
    velocity_refuse_after: int = Field(8, validation_alias="VELOCITY_REFUSE_AFTER")
    network_hold_after: int = Field(6, validation_alias="NETWORK_HOLD_AFTER")
    network_refuse_after: int = Field(30, validation_alias="NETWORK_REFUSE_AFTER")
    # A8.3: the re-registration ban of a closure whose measure names no severity
    # (minor 180 days, serious 1 year, grave 3 years, permanent).
    closure_ban_severity: Literal["minor", "serious", "grave", "permanent"] = "serious"
    # A8.2: days to correct a mismatching profile before service ceases.
    correction_days: int = Field(15, validation_alias="CORRECTION_DAYS")
    # A10.2 sweep: how often the app runs it (0: never; the command still works).
    # REGISTRATION_SWEEP_INTERVAL_SECONDS, or the older SWEEP_INTERVAL_SECONDS.
    sweep_interval_seconds: float = Field(3600, validation_alias="SWEEP_INTERVAL_SECONDS")
    # A8.3: how often a worker picks up names closed by other workers.
    closed_names_refresh_seconds: float = Field(2.0,
                                                validation_alias="CLOSED_NAMES_REFRESH_SECONDS")
    # Snapshot an account every this many events, so a command reads at most that many
    # (0: fold the whole stream every time). REGISTRATION_SNAPSHOT_EVERY.
    snapshot_every: int = Field(100, ge=0)
    # A8.3: labels that do not make a closed name another name (官方, 号, 说), and the
    # length from which a closed name inside a longer one sends it to review (0: never).
    # docs/decisions/0024-closed-name-affixes.md
    closed_names_affixes: list[str] = Field(default_factory=lambda: list(DEFAULT_AFFIXES))
    closed_names_contained_min_length: int = Field(6, ge=0)
    pool_size: int = Field(10, validation_alias="REGISTRATION_POOL_SIZE")
    # Overload (ADR 0044): new registrations are shed (503 overloaded, Retry-After) while
    # this many accounts registered in the last `awaiting_window_seconds` await
    # verification's answer (0: never); counted every `awaiting_refresh_seconds` by each
    # process that serves requests. REGISTRATION_MAX_AWAITING_VERIFICATION etc.
    max_awaiting_verification: int = Field(100, ge=0)
    awaiting_window_seconds: float = Field(300, gt=0)
    awaiting_refresh_seconds: float = Field(0.5, gt=0)
