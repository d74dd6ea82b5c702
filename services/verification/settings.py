import json

from pydantic import Field, SecretStr, field_validator, model_validator

from libs.identity.providers import Endpoint
from libs.runtime.settings import ServiceSettings

# A8.2: a starting list; operators add and remove words through the API.
DEFAULT_PROHIBITED_WORDS = ("赌博", "博彩", "六合彩", "代开发票", "枪支", "毒品", "色情", "裸聊",
                            "办证", "刷单", "套现", "高利贷", "翻墙")


class Settings(ServiceSettings):
    """Read from ``VERIFICATION_<FIELD>`` (``VERIFICATION_SWEEP_INTERVAL_SECONDS``...); the
    aliases are the older names, still read when the prefixed one is not set."""

    service: str = "verification"
    port: int = 8002
    # A8.1: "local" is the deterministic test double of adapters.py (development only);
    # "http" asks the real providers (public security, carrier, business registry) at the
    # endpoints below (README: "Identity providers").
    identity_provider: str = Field("local", validation_alias="IDENTITY_PROVIDER")
    public_security_url: str = ""
    public_security_credential: SecretStr = SecretStr("")
    carrier_url: str = ""
    carrier_credential: SecretStr = SecretStr("")
    business_registry_url: str = ""
    business_registry_credential: SecretStr = SecretStr("")
    provider_timeout_seconds: float = 3.0  # one attempt
    provider_attempts: int = 3  # within one check: exponential backoff with jitter
    provider_backoff_seconds: float = 0.2
    provider_backoff_max_seconds: float = 2.0
    provider_breaker_failures: int = 5  # consecutive failed attempts open the breaker
    provider_breaker_reset_seconds: float = 30.0
    # ADR 0026: an identity check without a verdict (a provider unavailable or without a
    # record) is asked again with backoff, and goes to a person after the deadline
    identity_check_interval_seconds: float = 1.0  # how often pending checks are looked at
    # (and soon after each commit, which may have queued one); how many are asked at once
    identity_check_concurrency: int = Field(4, ge=1, le=64)
    identity_retry_seconds: float = 30.0  # first wait; doubles each time, with jitter
    identity_retry_max_seconds: float = 1800.0
    identity_review_after_hours: float = 24.0
    # A10.1 extra verification: the carrier must have known the phone this long.
    extra_min_phone_tenure_months: int = Field(6, validation_alias="EXTRA_MIN_PHONE_TENURE_MONTHS")
    # A8.2
    prohibited_words: list[str] = Field(list(DEFAULT_PROHIBITED_WORDS),
                                        validation_alias="PROHIBITED_WORDS")
    protected_name_threshold: float = Field(0.85, validation_alias="PROTECTED_NAME_THRESHOLD")
    logo_max_distance: int = Field(8, validation_alias="LOGO_MAX_DISTANCE")
    # A9.3: every verified account is re-inspected at least this often, and the sweep
    # adds a random sample of this share of them.
    reinspection_interval_days: int = Field(180, validation_alias="REINSPECTION_INTERVAL_DAYS")
    reinspection_sample_fraction: float = Field(0.02,
                                                validation_alias="REINSPECTION_SAMPLE_FRACTION")
    # how often the app sweeps (0: never; `python -m services.verification.cli sweep` still
    # works)
    sweep_interval_seconds: float = Field(3600, validation_alias="VERIFICATION_SWEEP_SECONDS")

    @field_validator("prohibited_words", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        # VERIFICATION_PROHIBITED_WORDS reaches the model as raw text (the prefix rule of
        # ServiceSettings does not decode complex values as the legacy name's source does)
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _no_test_double_in_production(self) -> "Settings":
        if self.environment != "development" and self.identity_provider == "local":
            raise ValueError("VERIFICATION_IDENTITY_PROVIDER=local is a test double: configure "
                             "the real providers outside development")
        if self.identity_provider == "http":
            missing = [f"VERIFICATION_{k.upper()}" for k in (
                "public_security_url", "public_security_credential", "carrier_url",
                "carrier_credential", "business_registry_url", "business_registry_credential")
                if not (v := getattr(self, k)) or (isinstance(v, SecretStr)
                                                   and not v.get_secret_value())]
            if missing:
                raise ValueError("VERIFICATION_IDENTITY_PROVIDER=http needs " + ", ".join(missing))
        return self

    def provider_endpoint(self, check: str) -> Endpoint:
        """One provider's endpoint (``public_security``, ``carrier``, ``business_registry``)."""
        return Endpoint(
            url=getattr(self, f"{check}_url"),
            credential=getattr(self, f"{check}_credential").get_secret_value(),
            timeout_seconds=self.provider_timeout_seconds, attempts=self.provider_attempts,
            backoff_seconds=self.provider_backoff_seconds,
            backoff_max_seconds=self.provider_backoff_max_seconds,
            breaker_failures=self.provider_breaker_failures,
            breaker_reset_seconds=self.provider_breaker_reset_seconds)
