"""Typed settings from `TANDEM_*` environment variables.

Built once by the CLI or a test and handed to `create_app`; nothing reads the environment at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rest.webhook_sources import WebhookSource, by_name

VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'tandem.db'}"
    redis_url: str | None = None
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "tandem"
    keys_dir: Path = VAR_DIR / "keys"
    access_token_ttl_seconds: int = 15 * 60
    # NoDecode: the environment gives a comma-separated list, not JSON.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_page_size: int = 20
    max_page_size: int = 100
    max_body_bytes: int = 1_000_000
    max_string_length: int = 10_000
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    ws_connection_init_timeout_seconds: float = 10.0
    node_modules_dir: Path | None = None
    # Move start-up objects out of the collector's reach (tests turn it off: they build many apps).
    freeze_gc_on_start: bool = True
    # Webhooks and idempotency (rest/): inbound sources as JSON, the delivery worker's timing.
    webhook_sources: list[WebhookSource] = Field(default_factory=list)
    webhook_max_body_bytes: int = 256 * 1024
    webhook_worker: bool = True
    webhook_poll_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 30.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_lease_seconds: float = 120.0
    idempotency_ttl_seconds: int = 24 * 3600
    idempotency_lock_seconds: float = 60.0

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # From the environment: a comma-separated list, or a JSON array.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, origins: list[str]) -> list[str]:
        # Browsers send the token in a header, but a wildcard origin together with credentials
        # is never what an operator means; name each frontend instead.
        if "*" in origins:
            raise ValueError("TANDEM_CORS_ORIGINS must list origins explicitly, not '*'.")
        return origins

    @field_validator("webhook_sources")
    @classmethod
    def _unique_sources(cls, sources: list[WebhookSource]) -> list[WebhookSource]:
        by_name(sources)
        return sources

    @field_validator("webhook_lease_seconds")
    @classmethod
    def _lease_outlasts_a_delivery(cls, lease: float, info: ValidationInfo) -> float:
        # A lease shorter than one attempt would let a second instance send the same delivery.
        timeout = info.data.get("webhook_timeout_seconds", 0.0)
        if lease <= timeout:
            raise ValueError(f"TANDEM_WEBHOOK_LEASE_SECONDS must exceed the timeout ({timeout} s)")
        return lease

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return not self.production
