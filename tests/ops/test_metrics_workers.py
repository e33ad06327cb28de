"""`tandem serve --workers 2`: whichever worker answers a scrape, /metrics counts both workers'
requests (prometheus_client's multiprocess mode), and shows each worker's process series."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.live_server import server_process

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
REQUESTS = 40


def _count(exposition: str) -> float:
    found = re.search(r'^tandem_http_requests_total\{method="POST",route="/graphql",status="200"\} (\S+)$',
                      exposition, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_metrics_add_up_across_workers(settings: Settings, tmp_path: Path) -> None:
    env = {"TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with server_process(env, workers=2) as (url, _):
        # Fresh connections, so the kernel spreads them over both workers.
        for _ in range(REQUESTS):
            async with httpx.AsyncClient(timeout=10) as one:
                assert (await one.post(f"{url}/graphql", json={"query": "{ __typename }"})).status_code == 200
        await asyncio.sleep(1.5)  # each worker flushes its lock-free counters every second
        scrapes = []
        for _ in range(6):
            async with httpx.AsyncClient(timeout=10) as one:
                scrapes.append((await one.get(f"{url}/metrics")).text)
    assert [_count(text) for text in scrapes] == [REQUESTS] * 6  # not one worker's share, then the other's
    pids = set(re.findall(r'^tandem_process_resident_memory_bytes\{pid="(\d+)"\}', scrapes[-1], re.MULTILINE))
    assert len(pids) == 2
    assert "tandem_websocket_connections 0.0" in scrapes[-1]
