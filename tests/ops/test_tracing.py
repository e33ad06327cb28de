"""OpenTelemetry: off by default; with an exporter configured, each operation becomes spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace

from app.settings import Settings
from tests.conftest import GRAPHQL_RESPONSE, serve


@pytest.fixture(autouse=True)
def _uninstrumented_afterwards() -> Iterator[None]:
    """Instrumentation is process-wide: the tests after these must not produce spans (into a console
    exporter whose captured output is gone)."""
    yield
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    for instrumentor in (HTTPXClientInstrumentor(), RedisInstrumentor(), SQLAlchemyInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # tracing does not touch the database
async def test_console_exporter_writes_spans_for_an_operation(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    traced = settings.model_copy(update={"otel_exporter": "console"})
    async with serve(traced) as client:
        response = await client.post("/graphql", json={"query": "query Dashboard { __typename }"},
                                     headers={"Accept": GRAPHQL_RESPONSE})
        assert response.status_code == 200
    provider = trace.get_tracer_provider()
    provider.force_flush()  # type: ignore[attr-defined]
    exported = capsys.readouterr().out
    assert '"name": "GraphQL Query: Dashboard"' in exported
    assert '"service.name": "tandem"' in exported


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_request_is_a_server_span_continuing_traceparent_with_sql_spans_inside(settings: Settings) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tests.factories import make_user

    traced = settings.model_copy(update={"otel_exporter": "console"})
    async with serve(traced) as client:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        spans = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        app = client._transport.app  # type: ignore[attr-defined]
        alice = await make_user(app.state.sessions, "Alice")
        token = app.state.tokens.issue_access_token(str(alice.id), {"profile"})
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        response = await client.post("/graphql", json={"query": "query Me { viewer { name } }"}, headers={
            "Accept": GRAPHQL_RESPONSE, "Authorization": f"Bearer {token}",
            "traceparent": f"00-{trace_id}-{parent_id}-01"})
        assert response.status_code == 200
    finished = [span for span in spans.get_finished_spans() if format(span.context.trace_id, "032x") == trace_id]
    [server] = [s for s in finished if s.name == "POST /graphql" and s.kind == trace.SpanKind.SERVER]
    assert server.parent is not None and format(server.parent.span_id, "016x") == parent_id
    assert any(span.attributes and span.attributes.get("db.system") == "sqlite" for span in finished), [
        span.name for span in finished]
    assert any(span.name.startswith("GraphQL Query") for span in finished)


def test_otel_service_name_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.resources import Resource

    from app.tracing import service_attributes

    assert Resource.create(service_attributes()).attributes["service.name"] == "tandem"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tandem-eu-1")
    assert Resource.create(service_attributes()).attributes["service.name"] == "tandem-eu-1"
