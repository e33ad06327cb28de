"""OpenTelemetry tracing, on only when an exporter is configured (`TANDEM_OTEL_EXPORTER`).

Then every HTTP request is a server span that continues an incoming `traceparent` (W3C trace
context), with the GraphQL phases (Strawberry's extension), SQL statements, Redis commands and
outgoing httpx requests (webhook deliveries) as its children, from the opentelemetry-instrumentation
packages (the `otel` extra). `OTEL_SERVICE_NAME` names the service (default `tandem`); the exporter's
endpoint and headers come from the standard `OTEL_EXPORTER_OTLP_*` variables.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import Engine
from starlette.middleware import Middleware

from app.settings import Settings


def service_attributes() -> dict[str, str]:
    """`service.name` unless OTEL_SERVICE_NAME (which the SDK reads itself) says otherwise."""
    return {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "tandem"}


def tracing_extensions(settings: Settings) -> list[Any]:
    if settings.otel_exporter == "none":
        return []
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from strawberry.extensions.tracing import OpenTelemetryExtension

    exporter: SpanExporter
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create(service_attributes()))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry keeps the first
    return [OpenTelemetryExtension]


def tracing_middleware(settings: Settings, engines: list[Engine]) -> list[Middleware]:
    """The server span (outermost), and the database, Redis and httpx instrumentation it parents."""
    if settings.otel_exporter == "none":
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    sqlalchemy = SQLAlchemyInstrumentor()  # one instance per process: it instruments the engines it is given
    if sqlalchemy.is_instrumented_by_opentelemetry:
        sqlalchemy.uninstrument()  # an earlier app's engines (tests build several apps)
    # Its declared range stops below SQLAlchemy 2.1, whose event API it uses unchanged (tested here).
    sqlalchemy.instrument(engines=list(dict.fromkeys(engines)), skip_dep_check=True)
    for instrumentor in (RedisInstrumentor(), HTTPXClientInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()
    return [Middleware(OpenTelemetryMiddleware)]
