"""Typed settings from environment variables, with defaults that run locally."""

from __future__ import annotations

import json
from typing import Literal, get_origin

from pydantic import AliasChoices, Field, PositiveInt, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.events.tailer import IDLE_MAX_SECONDS, LINGER_SECONDS

from .collector import THRESHOLDS
from .kafka import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES

DEV_AUTH_SECRET = "development-only-auth-secret-change-me"
DEV_PII_KEY = "development-only-pii-key-change-me"


class ServiceSettings(BaseSettings):
    """Settings common to every service; each service subclasses it with its name and port.

    ``DATABASE_URL`` may be given per service as ``<SERVICE>_DATABASE_URL`` (so one shell
    can configure all five) or plainly as ``DATABASE_URL`` for a single process.

    One naming rule for environment variables: a setting a service declares itself is read
    from ``<SERVICE>_<FIELD>`` (``REGISTRATION_SWEEP_INTERVAL_SECONDS`` for the field
    ``sweep_interval_seconds`` of registration); a ``validation_alias`` on such a field is
    only the older name, still honoured when the prefixed one is not set. The settings
    declared here, shared by every service, keep their plain names.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service: str
    port: int
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("SERVICE_HOST", "HOST"))
    # Production unless told otherwise: the development defaults below (published in the
    # repository) apply only when ENVIRONMENT=development is set explicitly (`make run`,
    # the tests and the benchmarks set it).
    environment: str = Field("production", validation_alias="ENVIRONMENT")
    database_url: str = ""
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    # Prefix of every topic and consumer group: lets several systems share one broker
    # (the e2e suite runs its own namespace so earlier runs' events never reach it).
    kafka_namespace: str = Field("", validation_alias="KAFKA_NAMESPACE")
    topic_partitions: int = Field(3, validation_alias="KAFKA_TOPIC_PARTITIONS")
    # The consumers' fetches (ADR 0045): answered once they hold this many bytes, or after
    # this many milliseconds; 1 byte answers every record at once (aiokafka's default).
    kafka_fetch_min_bytes: int = Field(FETCH_MIN_BYTES, ge=1,
                                       validation_alias="KAFKA_FETCH_MIN_BYTES")
    kafka_fetch_max_wait_ms: int = Field(FETCH_MAX_WAIT_MS, ge=0, le=500,
                                         validation_alias="KAFKA_FETCH_MAX_WAIT_MS")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    var_dir: str = Field("var", validation_alias="VAR_DIR")
    # Development defaults so that `make run` works as is; refused outside development.
    auth_secret: str = Field(DEV_AUTH_SECRET, validation_alias="AUTH_SECRET")
    pii_key: str = Field(DEV_PII_KEY, validation_alias="PII_KEY")
    # Sealed values name the key id that sealed them (ADR 0033): new values are sealed under
    # PII_KEY_ID (whose secret is PII_KEY); PII_RETIRED_KEYS ({"<key id>": "<secret>"},
    # JSON) keeps older keys for opening. PII_BLIND_KEY_ID names the blind index key: "v1"
    # is the derivation every stored blind index was made with; changing it needs a re-index.
    pii_key_id: str = Field("k1", validation_alias="PII_KEY_ID")
    pii_retired_keys: dict[str, str] = Field({}, validation_alias="PII_RETIRED_KEYS")
    pii_blind_key_id: str = Field("v1", validation_alias="PII_BLIND_KEY_ID")
    # Admission control (libs.runtime.admission, ADR 0036): requests handled at once (0: no
    # limit), requests waiting for a slot beyond those, how long one may wait, and the
    # Retry-After of the 503 that sheds the rest.
    admission_max_in_flight: int = Field(32, ge=0, validation_alias="ADMISSION_MAX_IN_FLIGHT")
    admission_max_queue: int = Field(64, ge=0, validation_alias="ADMISSION_MAX_QUEUE")
    admission_max_wait_seconds: float = Field(0.25, ge=0,
                                              validation_alias="ADMISSION_MAX_WAIT_SECONDS")
    admission_retry_after_seconds: int = Field(1, ge=1,
                                               validation_alias="ADMISSION_RETRY_AFTER_SECONDS")

    # What this process runs (ADR 0037): ``all`` (the HTTP API and the workers: relay,
    # projections, consumers, sweeps; one process per service, the default), ``api`` (the
    # HTTP API only; scale it out) or ``worker`` (the workers, and an HTTP port for health,
    # readiness and metrics). Beside ``api`` processes exactly one ``worker`` should run.
    role: Literal["all", "api", "worker"] = Field("all", validation_alias="SERVICE_ROLE")
    # The relay and the projection runners (libs.events.tailer, ADR 0037): how long a commit's
    # nudge waits to gather more commits into the same page, and the longest wait between
    # polls of an idle log.
    tailer_linger_seconds: float = Field(LINGER_SECONDS, ge=0, le=1,
                                         validation_alias="TAILER_LINGER_SECONDS")
    tailer_idle_max_seconds: float = Field(IDLE_MAX_SECONDS, ge=0.05, le=60,
                                           validation_alias="TAILER_IDLE_MAX_SECONDS")

    # The garbage collector once the service is up (libs.runtime.collector, ADR 0041):
    # freeze the start-up heap, and the generations' thresholds (CPython's: [700, 10, 10]).
    gc_freeze: bool = Field(True, validation_alias="GC_FREEZE")
    gc_thresholds: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        THRESHOLDS, validation_alias="GC_THRESHOLDS")

    def admission_limits(self):
        from .admission import Limits

        return Limits(max_in_flight=self.admission_max_in_flight,
                      max_queue=self.admission_max_queue,
                      max_wait=self.admission_max_wait_seconds,
                      retry_after=self.admission_retry_after_seconds)
    # Request body caps (libs.runtime.limits, ADR 0030), by the route's class: most bodies
    # are a few hundred bytes; uploads carry a base64 document or image (5 MB decoded is
    # 6.7 MB of base64); bulk is a batch of traffic samples (credit's POST /v1/metrics).
    max_body_bytes: int = Field(256 * 1024, ge=1024, validation_alias="MAX_BODY_BYTES")
    max_upload_body_bytes: int = Field(8 * 1024 * 1024, ge=1024,
                                       validation_alias="MAX_UPLOAD_BODY_BYTES")
    max_bulk_body_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                     validation_alias="MAX_BULK_BODY_BYTES")

    @model_validator(mode="before")
    @classmethod
    def _database_url_from_env(cls, values: dict) -> dict:
        import os

        service = values.get("service") or cls.model_fields["service"].default
        prefix = f"{str(service).upper()}_"
        for name, info in cls.model_fields.items():
            if name in ServiceSettings.model_fields:
                continue
            value = os.environ.get(prefix + name.upper())
            if value is None or name in values:  # a value given in code wins
                continue
            if get_origin(info.annotation) in (list, dict, set, tuple):
                value = json.loads(value)  # as pydantic-settings reads complex values: JSON
            alias = info.validation_alias
            # the prefixed name wins over the older one read through the alias
            values[alias if isinstance(alias, str) else name] = value
        if not values.get("database_url"):
            url = os.environ.get(f"{str(service).upper()}_DATABASE_URL") or os.environ.get(
                "DATABASE_URL"
            )
            if url:
                values["database_url"] = url
        return values

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir}/{self.service}.db"
        if self.environment == "development":
            return self
        missing = []
        if self.database_url.startswith("sqlite"):
            missing.append(f"{self.service.upper()}_DATABASE_URL (a PostgreSQL URL: SQLite "
                           "is the embedded default for development only)")
        for name, value, dev in (("AUTH_SECRET", self.auth_secret, DEV_AUTH_SECRET),
                                 ("PII_KEY", self.pii_key, DEV_PII_KEY)):
            if value == dev or len(value) < 32:
                missing.append(f"{name} (a secret of 32+ characters, not the development "
                               "default)")
        for kid, value in self.pii_retired_keys.items():
            if kid == self.pii_key_id:
                missing.append(f"PII_RETIRED_KEYS without the current key id {kid!r}")
            elif value == DEV_PII_KEY or len(value) < 32:
                missing.append(f"PII_RETIRED_KEYS[{kid!r}] (a secret of 32+ characters, not "
                               "the development default)")
        if missing:
            raise ValueError(
                f"ENVIRONMENT is {self.environment!r} (anything but 'development' runs as "
                "production), which needs: " + "; ".join(missing)
                + ". For a local run set ENVIRONMENT=development, as `make run` does.")
        return self
