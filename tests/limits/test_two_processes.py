"""Two server processes, one Redis: a burst of concurrent requests, split between them, is admitted
up to the bucket's capacity plus what it restored meanwhile, and not one point more.

On one Redis and on a Redis Cluster. The servers are real `tandem serve` subprocesses configured through `TANDEM_*` variables, as
`tandem serve --workers 2` would run them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from app.settings import Settings
from db.models import User
from tests.conftest import GRAPHQL_RESPONSE
from tests.live_server import server_processes
from tests.realtime.conftest import redis_prefix

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TEN = "{ " + " ".join(f"v{i}: viewer {{ id }}" for i in range(10)) + " }"  # costs 10, refunds nothing
CAPACITY = 100
RESTORE_RATE = 2.0
REQUESTS = 60


def _env(settings: Settings) -> dict[str, str]:
    return {
        "TANDEM_DATABASE_URL": settings.database_url,
        "TANDEM_KEYS_DIR": str(settings.keys_dir),
        "TANDEM_RATE_TIERS": json.dumps({"user": {"capacity": CAPACITY, "restore_rate": RESTORE_RATE}}),
        "TANDEM_LOG_JSON": "false",
        "TANDEM_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(params=["single", "cluster"])
def redis_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "single":
        return {"TANDEM_REDIS_URL": request.getfixturevalue("limits_redis_url")}
    # The bucket on one node of three, reached from both processes through the cluster client.
    return {"TANDEM_REDIS_URL": request.getfixturevalue("redis_cluster").url, "TANDEM_REDIS_PREFIX": redis_prefix()}


async def test_two_processes_never_admit_more_than_the_bucket_holds(
    settings: Settings, alice: User, token_for: Callable[..., str], redis_env: dict[str, str],
) -> None:
    headers = {"Authorization": f"Bearer {token_for(alice)}", "Accept": GRAPHQL_RESPONSE}
    with server_processes({**_env(settings), **redis_env}, 2) as urls:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=REQUESTS)) as http:
            async def ask(i: int, query: str = TEN) -> tuple[str, httpx.Response]:
                url = urls[i % len(urls)]
                return url, await http.post(f"{url}/graphql", json={"query": query}, headers=headers)

            # Warm both up (free: reading the budget costs nothing) so neither starts the race late.
            for i in range(len(urls)):
                assert (await ask(i, "{ rateLimit { remaining } }"))[1].status_code == 200

            started = time.monotonic()
            answers = await asyncio.gather(*(ask(i) for i in range(REQUESTS)))
            elapsed = time.monotonic() - started

    statuses = [response.status_code for _, response in answers]
    assert set(statuses) <= {200, 429}, statuses
    admitted = [(url, response.json()) for url, response in answers if response.status_code == 200]
    admitted_cost = sum(body["extensions"]["cost"]["actualQueryCost"] for _, body in admitted)
    assert all(body["extensions"]["cost"]["requestedQueryCost"] == 10 for _, body in admitted)
    # The bucket starts full and regains RESTORE_RATE points a second: nothing beyond that gets in.
    assert admitted_cost <= CAPACITY + RESTORE_RATE * elapsed, (admitted_cost, elapsed)
    assert admitted_cost >= CAPACITY  # and the limiter does not refuse what it could admit
    # Each process alone could have admitted CAPACITY from its half of the burst: the bound above
    # holds only because both charge the one bucket in Redis.
    assert [url for url, _ in answers].count(urls[0]) == [url for url, _ in answers].count(urls[1]) == REQUESTS // 2
    throttled = next(response for _, response in answers if response.status_code == 429)
    assert throttled.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert int(throttled.headers["Retry-After"]) >= 1
