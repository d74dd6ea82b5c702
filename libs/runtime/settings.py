"""Typed settings from environment variables, with defaults that run locally."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings common to every service; each service subclasses it with its name and port.

    ``DATABASE_URL`` may be given per service as ``<SERVICE>_DATABASE_URL`` (so one shell
    can configure all five) or plainly as ``DATABASE_URL`` for a single process.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service: str
    port: int
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("SERVICE_HOST", "HOST"))
    environment: str = Field("development", validation_alias="ENVIRONMENT")
    database_url: str = ""
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    topic_partitions: int = Field(3, validation_alias="KAFKA_TOPIC_PARTITIONS")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    var_dir: str = Field("var", validation_alias="VAR_DIR")

    @model_validator(mode="before")
    @classmethod
    def _database_url_from_env(cls, values: dict) -> dict:
        import os

        service = values.get("service") or cls.model_fields["service"].default
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
        if self.environment != "development" and self.database_url.startswith("sqlite"):
            raise ValueError(
                "SQLite is the embedded default for development only; "
                f"set {self.service.upper()}_DATABASE_URL to a PostgreSQL URL"
            )
        return self
