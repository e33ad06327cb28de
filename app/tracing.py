"""OpenTelemetry tracing, on only when an exporter is configured (`TANDEM_OTEL_EXPORTER`)."""

from __future__ import annotations

from typing import Any

from app.settings import Settings


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
        # Endpoint and headers come from the standard OTEL_EXPORTER_OTLP_* variables.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "tandem"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return [OpenTelemetryExtension]
