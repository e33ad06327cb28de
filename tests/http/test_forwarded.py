"""X-Forwarded-For is believed only from the proxies in TANDEM_FORWARDED_ALLOW_IPS (default none):
otherwise anything on the host, or a proxy passing the header through, could pick its own address
for throttling and keys. Observed through a real `tandem serve` process: anonymous callers are
charged per IP, so a believed header gives each forged address a bucket of its own."""

from __future__ import annotations

import json

import httpx
import pytest

from app.settings import Settings
from tests.live_server import server_processes

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PRICED = "{ __schema { types { name } } }"  # priced (README: introspection), open to anonymous callers


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir),
        "TANDEM_RATE_TIERS": json.dumps({"anonymous": {"capacity": 100, "restore_rate": 0.001}}),
        "TANDEM_LOG_JSON": "false", **extra,
    }


def _available(url: str, forwarded_for: str) -> float:
    response = httpx.post(f"{url}/graphql", json={"query": PRICED}, headers={"X-Forwarded-For": forwarded_for})
    assert response.status_code == 200, response.text
    return float(response.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"])


def test_forwarded_for_is_ignored_by_default(settings: Settings) -> None:
    with server_processes(_env(settings), 1) as (url,):
        first = _available(url, "198.51.100.1")
        second = _available(url, "198.51.100.2")
    assert second < first  # one bucket: the peer's own address, whatever the header says


def test_forwarded_for_is_believed_from_a_named_proxy(settings: Settings) -> None:
    with server_processes(_env(settings, TANDEM_FORWARDED_ALLOW_IPS="127.0.0.1"), 1) as (url,):
        first = _available(url, "198.51.100.1")
        second = _available(url, "198.51.100.2")
        again = _available(url, "198.51.100.1")
    assert second == first  # a fresh bucket for each client behind the proxy
    assert again < first
