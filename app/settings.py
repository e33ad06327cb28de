"""Typed settings from `TANDEM_*` environment variables.

Built once by the CLI or a test and handed to `create_app`; nothing reads the environment at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth.external import TrustedIssuer

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
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    authorization_code_ttl_seconds: int = Field(default=60, ge=1, le=60)
    # External identity providers whose tokens are accepted (JSON array; see auth/external.py).
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    # Downstream services a Tandem token may be exchanged into (RFC 8693 `audience`), comma-separated.
    exchange_audiences: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The public OAuth client that GraphiQL signs in with (`tandem seed` creates it).
    graphiql_client_id: str = "tandem-demo"
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
    # Queries run breadth-first by schema/execution.py (graphql-core for what it does not take); false:
    # graphql-core's executor for everything, e.g. to rule the batched executor out when debugging.
    batched_execution: bool = True
    # Persisted queries (README "Persisted queries"). None: the manifests shipped in `persisted_queries/`.
    persisted_queries_dir: Path | None = None
    persisted_queries_reload_seconds: float = 5.0
    apq_max_entries: int = 2_000
    apq_max_query_bytes: int = 16_384
    # Parsed documents cached per process, bounded by their total source length (an AST takes ~100x).
    document_cache_max_chars: int = 500_000
    require_trusted_documents_for_anonymous: bool = False
    get_cache_max_age_seconds: int = 60

    @field_validator("cors_origins", "exchange_audiences", mode="before")
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

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_enabled(self) -> bool:
        return not self.production
