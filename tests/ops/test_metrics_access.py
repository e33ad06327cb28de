"""`/metrics` maps the service (routes, error codes, volumes): never anonymous on the API port in
production. A metrics token puts it behind a bearer token anywhere."""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.conftest import serve

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_production_hides_metrics_without_a_token(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"env": "production"})) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert "tandem_http_requests" not in response.text


@pytest.mark.parametrize("env", ["production", "development"])
async def test_a_metrics_token_is_required_once_set(settings: Settings, env: str) -> None:
    configured = settings.model_copy(update={"env": env})
    configured = Settings.model_validate({**configured.model_dump(), "metrics_token": "scrape-me-4f9a"})
    async with serve(configured) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic c2NyYXBlLW1lLTRmOWE="},
                        {"Authorization": "Bearer scrape-me-4f9"}):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "UNAUTHENTICATED"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        allowed = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-4f9a"})
    assert allowed.status_code == 200 and "tandem_http_requests" in allowed.text


async def test_development_serves_metrics_openly(settings: Settings) -> None:
    async with serve(settings) as http:
        assert (await http.get("/metrics")).status_code == 200
