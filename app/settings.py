"""Typed settings from `TANDEM_*` environment variables.

Built once by the CLI or a test and handed to `create_app`; nothing reads the environment at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth.external import TrustedIssuer
from limits.introspection import IntrospectionMode
from rest.webhook_sources import WebhookSource, by_name

VAR_DIR = Path("var")


class RateTier(BaseModel):
    """One tier's bucket of query-cost points: `capacity`, refilled at `restore_rate` points a second."""

    capacity: int = Field(gt=0)
    restore_rate: float = Field(gt=0)


class RateTiers(BaseModel):
    """`TANDEM_RATE_TIERS` is JSON, e.g. `{"anonymous": {"capacity": 500, "restore_rate": 5}}`;
    tiers it leaves out keep these defaults."""

    anonymous: RateTier = RateTier(capacity=1_000, restore_rate=10)
    user: RateTier = RateTier(capacity=1_000, restore_rate=50)
    service: RateTier = RateTier(capacity=2_000, restore_rate=100)
    admin: RateTier = RateTier(capacity=5_000, restore_rate=250)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANDEM_", extra="ignore")

    env: Literal["development", "production"] = "development"
    # Who may introspect the schema: on | authenticated | off (unset: `authenticated` in production, else `on`).
    introspection: IntrospectionMode | None = None
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'tandem.db'}"
    # PostgreSQL's connection pool for requests (SQLite uses its own): sized for the concurrency one
    # worker serves; no ping per checkout (a connection broken by a restart fails one request, and the
    # pool then reconnects), connections renewed after the recycle time.
    database_pool_size: int = Field(default=20, gt=0)
    database_max_overflow: int = Field(default=10, ge=0)
    database_pool_pre_ping: bool = False
    database_pool_recycle_seconds: int = Field(default=1800, gt=0)
    redis_url: str | None = None
    # A Redis Cluster behind a plain redis:// URL (or say redis+cluster:// in the URL itself).
    redis_cluster: bool = False
    # Any Redis command gives up after this (the rate limiter waits less: its own timeout below).
    redis_timeout_seconds: float = Field(default=2.0, gt=0)
    # Production without Redis is refused unless this is the only process on the only host.
    single_instance: bool = False
    # How many instances share the Redis (`serve --workers N` sets N on one host): while Redis is
    # down each enforces 1/instances of every rate-limit tier.
    instances: int = Field(default=1, ge=1)
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
    # What one user may own and one document may keep; past a limit, mutations answer a
    # `userErrors` entry with code LIMIT_EXCEEDED.
    max_document_bytes: int = Field(default=16 * 1024 * 1024, gt=0)  # its Yjs state and update log
    max_snapshots_per_document: int = Field(default=100, gt=0)
    max_documents_per_user: int = Field(default=1_000, gt=0)
    max_tasks_per_user: int = Field(default=10_000, gt=0)
    default_page_size: int = 20
    max_page_size: int = 100
    max_body_bytes: int = 1_000_000
    max_string_length: int = 10_000
    # Redis configured but not answering (and the in-memory copy of the revocation list not in sync):
    # accept unexpired tokens not known to be revoked (true), or answer 503 (false).
    revocation_fail_open: bool = True
    # `register`: at most this many per email address and per client IP in a sliding window.
    registrations_per_address: int = Field(default=3, gt=0)
    registrations_per_ip: int = Field(default=10, gt=0)
    registration_window_seconds: int = Field(default=3600, gt=0)
    # Comma-separated base64 keys of 32 bytes, newest first: seals webhook secrets at rest
    # (db/secret_box.py). Required in production; development makes one under `keys_dir`.
    secret_key: SecretStr | None = None
    # `/metrics` needs `Authorization: Bearer <this>` when set; unset, production answers 404 there.
    metrics_token: SecretStr | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or CIDRs,
    # `*` for any); unset: none, and the peer's own address is the client's.
    forwarded_allow_ips: str = ""
    # One JSON line per HTTP request (app/access_log.py).
    access_log: bool = True
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    ws_connection_init_timeout_seconds: float = 10.0
    # How often an open socket looks its token up in the revocation list (in memory; one Redis EXISTS
    # while the in-memory copy is not in sync).
    ws_revocation_check_seconds: float = Field(default=15.0, gt=0)
    # Realtime: Redis key/channel namespace, broker queue per subscriber, update-log compaction, presence.
    # No braces: the keys' own hash tags (`{apq}`, `{revoked}`, `{<bucket>}`) choose their Cluster slots.
    redis_prefix: str = Field(default="tandem:", pattern=r"^[^{}]*$")
    ws_ticket_ttl_seconds: int = 30
    realtime_queue_size: int = 1024
    realtime_compact_every: int = 200
    realtime_keep_updates: int = 100
    realtime_recheck_seconds: float = 30.0
    presence_timeout_seconds: float = 30.0
    presence_rate_per_second: float = 20.0
    node_modules_dir: Path | None = None
    # Query limits and the cost-based rate limiter (README: "Rate limits and query cost").
    limits_enabled: bool = True
    max_query_depth: int = Field(default=10, gt=0)
    max_query_aliases: int = Field(default=15, ge=0)
    max_query_tokens: int = Field(default=2_000, gt=0)
    max_query_directives: int = Field(default=50, ge=0)
    max_root_fields: int = Field(default=20, gt=0)
    max_batch_operations: int = Field(default=10, ge=0)
    max_query_cost: int = Field(default=1_000, gt=0)
    rate_tiers: RateTiers = Field(default_factory=RateTiers)
    rate_limit_fail_open: bool = True  # Redis configured but not answering: let requests through
    rate_limit_redis_timeout_seconds: float = Field(default=0.5, gt=0)
    # WebSocket limits (limits/websocket.py), for the subscription endpoint.
    ws_messages_per_second: float = Field(default=10.0, gt=0)
    ws_message_burst: int = Field(default=20, gt=0)
    ws_max_subscriptions: int = Field(default=20, gt=0)
    ws_max_connections_per_user: int = Field(default=10, gt=0)
    ws_max_connections_per_ip: int = Field(default=50, gt=0)
    ws_strikes: int = Field(default=3, gt=0)
    ws_cool_down_seconds: float = Field(default=60.0, ge=0)
    # Move start-up objects out of the collector's reach (tests turn it off: they build many apps).
    freeze_gc_on_start: bool = True
    # Queries run breadth-first by schema/execution.py (graphql-core for what it does not take); false:
    # graphql-core's executor for everything, e.g. to rule the batched executor out when debugging.
    batched_execution: bool = True
    # Documents already known to be valid skip Strawberry's extension pipeline over HTTP (app/prepared.py),
    # with the same answers; false: every request takes `schema.execute` (off when tracing anyway).
    prepared_operations: bool = True
    # Persisted queries (README "Persisted queries"). None: the manifests shipped in `persisted_queries/`.
    persisted_queries_dir: Path | None = None
    persisted_queries_reload_seconds: float = 5.0
    apq_max_entries: int = 2_000
    apq_max_query_bytes: int = 16_384
    # Parsed documents cached per process, bounded by their total source length (an AST takes ~100x).
    document_cache_max_chars: int = 500_000
    require_trusted_documents_for_anonymous: bool = False
    get_cache_max_age_seconds: int = 60
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
    # How long a retry waits for its first request, still running, before 409 IDEMPOTENCY_KEY_IN_USE.
    idempotency_wait_seconds: float = 5.0

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
    def introspection_mode(self) -> IntrospectionMode:
        if self.introspection is not None:
            return self.introspection
        return IntrospectionMode.AUTHENTICATED if self.production else IntrospectionMode.ON

    @property
    def graphiql_enabled(self) -> bool:
        return not self.production
