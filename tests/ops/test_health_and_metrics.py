"""What operators and load balancers read: liveness, readiness (database and Redis), Prometheus
metrics, and the public signing keys.

Readiness is checked against the real local Redis and against a closed port, never a stub.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import jwt
from starlette.applications import Starlette

from app.settings import Settings
from db.models import User
from tests.conftest import REDIS_URL, serve

UNKNOWN_FIELD = "{ viewer { shoeSize } }"
VIEWER = "{ viewer { id } }"
MISSING_TASK = 'query { task(id: "VGFzazo5OTk5OTk") { id } }'  # Task:999999
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CLOSED_PORT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/tandem"



# --- health -------------------------------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_readyz_checks_redis_when_configured(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"redis_url": REDIS_URL})) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_unreachable_redis_is_not_ready(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"redis_url": CLOSED_PORT_REDIS})) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "redis": "unavailable"}}
    for leak in ("Traceback", "refused", "127.0.0.1", "Error"):
        assert leak not in response.text


async def test_unreachable_database_is_not_ready(settings: Settings) -> None:
    async with serve(settings.model_copy(update={"database_url": CLOSED_PORT_POSTGRES})) as http:
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}
    assert "Traceback" not in ready.text
    assert alive.status_code == 200  # liveness is about the process: restarting it would not help


# --- metrics ------------------------------------------------------------------------------------


async def test_metrics_is_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE tandem_http_requests_total counter" in response.text
    assert "# TYPE tandem_http_request_duration_seconds histogram" in response.text


async def test_requests_are_counted_and_timed(client: httpx.AsyncClient) -> None:
    for _ in range(2):
        await client.post("/graphql", json={"query": VIEWER})
    metrics = (await client.get("/metrics")).text
    assert 'tandem_http_requests_total{method="POST",route="/graphql",status="200"} 2.0' in metrics
    assert 'tandem_http_request_duration_seconds_count{route="/graphql"} 2.0' in metrics
    assert 'tandem_http_request_duration_seconds_bucket{le="+Inf",route="/graphql"} 2.0' in metrics


async def test_graphql_errors_are_counted_by_code(
    client: httpx.AsyncClient, token_for: Callable[..., str], alice: User
) -> None:
    await client.post("/graphql", json={"query": UNKNOWN_FIELD})
    await client.post("/graphql", content=b"{}", headers={"Content-Type": "text/plain"})
    await client.post(
        "/graphql", json={"query": MISSING_TASK}, headers={"Authorization": f"Bearer {token_for(alice)}"}
    )
    metrics = (await client.get("/metrics")).text
    assert 'tandem_graphql_errors_total{code="BAD_USER_INPUT"} 2.0' in metrics
    assert 'tandem_graphql_errors_total{code="NOT_FOUND"} 1.0' in metrics


async def test_unknown_paths_share_one_label(client: httpx.AsyncClient) -> None:
    for path in ("/wp-admin", "/.env", "/graphql/../etc/passwd"):
        await client.get(path)
    metrics = (await client.get("/metrics")).text
    assert 'tandem_http_requests_total{method="GET",route="other",status="404"} 3.0' in metrics
    assert "wp-admin" not in metrics
    assert ".env" not in metrics


async def test_metrics_belong_to_one_app(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.post("/graphql", json={"query": VIEWER})
    async with serve(settings) as other:
        metrics = (await other.get("/metrics")).text
    assert 'route="/graphql"' not in metrics


# --- signing keys -------------------------------------------------------------------------------


async def test_jwks_publishes_public_keys_only(
    app: Starlette, client: httpx.AsyncClient, token_for: Callable[..., str], alice: User
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        if key["alg"] == "RS256":  # ID tokens of clients registered for RS256
            assert (key["kty"], key["use"]) == ("RSA", "sig") and key["n"] and key["e"]
        else:
            assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
            assert key["x"] and key["y"]
        assert key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()  # public parts only
    signing_kid = jwt.get_unverified_header(token_for(alice))["kid"]
    assert signing_kid in {key["kid"] for key in keys}
