"""A real `tandem serve` process logs only JSON lines, uvicorn's own included, and one access line per
request with what an operator looks for (route, status, duration, operation, document, request id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.redis_server import free_port

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ROOT = Path(__file__).resolve().parents[2]


def test_every_line_is_json_and_each_request_has_an_access_line(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir),
           "TANDEM_LOG_JSON": "true", "TANDEM_LOG_LEVEL": "INFO"}
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, log_path.read_text()
                time.sleep(0.1)
            answer = httpx.post(f"{url}/graphql", json={"query": "query Hello { __typename }",
                                                        "operationName": "Hello"})
            request_id = answer.headers["x-request-id"]
            missing = httpx.get(f"{url}/nowhere?token=secret-in-a-query-string")
        finally:
            server.terminate()
            server.wait(20)
    lines = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is JSON: uvicorn's own too
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)
    [access] = [e for e in entries if e["logger"] == "tandem.access" and e["request_id"] == request_id]
    assert (access["method"], access["route"], access["status"]) == ("POST", "/graphql", 200)
    assert access["operation"] == "Hello" and len(access["document"]) == 16 and access["duration_ms"] > 0
    [not_found] = [e for e in entries if e["logger"] == "tandem.access" and
                   e["request_id"] == missing.headers["x-request-id"]]
    assert (not_found["route"], not_found["status"]) == ("other", 404)
    assert "secret-in-a-query-string" not in log_path.read_text()
