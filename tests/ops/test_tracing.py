"""OpenTelemetry: off by default; with an exporter configured, each operation becomes spans."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from app.settings import Settings
from tests.conftest import GRAPHQL_RESPONSE, serve


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
