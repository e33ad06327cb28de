"""`tandem serve --workers 2` stopped (SIGTERM) under load on keep-alive connections: every request
sent gets its answer (the last ones with `Connection: close`); clients meet only refused new
connections, which they may safely retry elsewhere. None is left not knowing whether its request ran."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter

import httpx
import pytest

from app.settings import Settings
from tests.live_server import server_process, wait_for_exit

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def test_stopping_under_load_drops_no_answer(settings: Settings) -> None:
    env = {"TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir)}
    outcomes: Counter[str] = Counter()
    closing_answers = 0
    stop = asyncio.Event()
    with server_process(env, workers=2) as (base, pid):
        url = f"{base}/graphql"

        async def client() -> None:
            nonlocal closing_answers
            # One keep-alive connection each (httpx reconnects when an answer says Connection: close).
            async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=1)) as http:
                while not stop.is_set():
                    try:
                        response = await http.post(url, json={"query": "{ __typename }"})
                    except httpx.ConnectError:
                        outcomes["refused"] += 1  # nothing was sent: safe to retry
                        await asyncio.sleep(0.05)
                        continue
                    except httpx.TransportError as exc:
                        outcomes[f"lost: {type(exc).__name__}"] += 1  # sent, and no answer
                        continue
                    outcomes[str(response.status_code)] += 1
                    closing_answers += response.headers.get("connection") == "close"

        clients = [asyncio.ensure_future(client()) for _ in range(8)]
        await asyncio.sleep(1.5)
        os.kill(pid, signal.SIGTERM)
        await asyncio.wait_for(asyncio.to_thread(wait_for_exit, pid), 30)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
    assert outcomes["200"] > 50
    assert {key for key in outcomes if key.startswith("lost")} == set(), outcomes
    assert set(outcomes) <= {"200", "refused"}, outcomes
    assert closing_answers >= 1  # connections were told they were closing, not cut
