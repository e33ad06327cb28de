"""`tandem serve` refuses settings that would run, but not safely, and says what to set: production
without Redis unless it is the only process on the only host, several workers sharing nothing, and
production without TANDEM_SECRET_KEY. In development it names the issuer to set for another port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import server_process
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    base |= {"TANDEM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tandem.db'}",
             "TANDEM_KEYS_DIR": str(tmp_path / "keys"), **env}
    return subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()), *args],
                          cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def test_production_without_redis_is_refused(tmp_path: Path) -> None:
    refused = _serve(tmp_path, TANDEM_ENV="production", TANDEM_SECRET_KEY=os.environ["TANDEM_SECRET_KEY"])
    assert refused.returncode != 0
    assert "TANDEM_ENV=production without TANDEM_REDIS_URL" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_single_instance_with_several_workers_is_refused(tmp_path: Path) -> None:
    refused = _serve(tmp_path, "--single-instance", "--workers", "2", TANDEM_ENV="production",
                     TANDEM_SECRET_KEY=os.environ["TANDEM_SECRET_KEY"])
    assert refused.returncode != 0 and "--single-instance with --workers 2" in refused.stderr


def test_production_without_a_secret_key_is_refused(tmp_path: Path) -> None:
    refused = _serve(tmp_path, "--single-instance", TANDEM_ENV="production", TANDEM_SECRET_KEY="")
    assert refused.returncode != 0 and "TANDEM_SECRET_KEY" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_single_instance_in_production_starts(settings_env: dict[str, str]) -> None:
    with server_process({**settings_env, "TANDEM_ENV": "production", "TANDEM_SINGLE_INSTANCE": "true"}) as (url, _):
        import httpx

        assert httpx.get(f"{url}/healthz").status_code == 200


@pytest.fixture
def settings_env(settings: object, database_url: str) -> dict[str, str]:
    from app.settings import Settings

    assert isinstance(settings, Settings)
    return {"TANDEM_DATABASE_URL": database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir)}


def test_development_names_the_issuer_to_set_for_another_port() -> None:
    from app.preflight import issuer_hint
    from app.settings import Settings

    development = Settings(_env_file=None, issuer="http://127.0.0.1:8000")  # type: ignore[call-arg]
    hint = issuer_hint(development, "127.0.0.1", 8080)
    assert hint is not None and "Set TANDEM_ISSUER=http://127.0.0.1:8080" in hint
    assert issuer_hint(development, "127.0.0.1", 8000) is None
