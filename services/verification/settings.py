import json

from pydantic import Field, field_validator, model_validator

from libs.runtime.settings import ServiceSettings

# A8.2: a starting list; operators add and remove words through the API.
DEFAULT_PROHIBITED_WORDS = ("赌博", "博彩", "六合彩", "代开发票", "枪支", "毒品", "色情", "裸聊",
                            "办证", "刷单", "套现", "高利贷", "翻墙")


class Settings(ServiceSettings):
    """Read from ``VERIFICATION_<FIELD>`` (``VERIFICATION_SWEEP_INTERVAL_SECONDS``...); the
    aliases are the older names, still read when the prefixed one is not set."""

    service: str = "verification"
    port: int = 8002
    # A8.1: "local" is the deterministic test double of adapters.py; production adapters
    # (carrier, public security, business registry) are configured by name.
    identity_provider: str = Field("local", validation_alias="IDENTITY_PROVIDER")
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
        return self
