"""Webhook settings refuse what cannot work, at start-up rather than on the first request."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from app.settings import Settings
from tests.rest.conftest import SECRET_A

SHORT_KEY = "whsec_" + "c2hvcnQ="  # 5 bytes


@pytest.fixture
def from_environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Settings]:
    """Settings as the server builds them, with `TANDEM_WEBHOOK_SOURCES` set to the given JSON."""

    def build(json_text: str) -> Settings:
        monkeypatch.setenv("TANDEM_WEBHOOK_SOURCES", json_text)
        return Settings(_env_file=None)  # type: ignore[call-arg]

    return build


@pytest.mark.parametrize(("sources", "complaint"), [
    (f'[{{"name": "crm", "secrets": ["{SECRET_A.removeprefix("whsec_")}"], "act_as": "a@b.c"}}]', "starts with"),
    ('[{"name": "crm", "secrets": ["whsec_not base64!"], "act_as": "a@b.c"}]', "base64"),
    (f'[{{"name": "crm", "secrets": ["{SHORT_KEY}"], "act_as": "a@b.c"}}]', "24 to 64 random bytes"),
    ('[{"name": "crm", "secrets": [], "act_as": "a@b.c"}]', "at least 1"),
    (f'[{{"name": "Not A Slug", "secrets": ["{SECRET_A}"], "act_as": "a@b.c"}}]', "pattern"),
    (f'[{{"name": "crm", "secrets": ["{SECRET_A}"]}}]', "act_as"),
    (f'[{{"name": "crm", "secrets": ["{SECRET_A}"], "act_as": "a@b.c"}}, '
     f'{{"name": "crm", "secrets": ["{SECRET_A}"], "act_as": "d@e.f"}}]', "two webhook sources are named 'crm'"),
])
def test_bad_sources_are_refused(from_environment: Callable[[str], Settings], sources: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        from_environment(sources)


def test_good_sources_load_from_json(from_environment: Callable[[str], Settings]) -> None:
    settings = from_environment(f'[{{"name": "crm", "secrets": ["{SECRET_A}"], "act_as": "Bot@Example.com"}}]')
    assert [(s.name, s.act_as) for s in settings.webhook_sources] == [("crm", "bot@example.com")]


def test_a_lease_must_outlast_an_attempt() -> None:
    with pytest.raises(ValidationError, match="must exceed the timeout"):
        Settings(webhook_timeout_seconds=30, webhook_lease_seconds=30, _env_file=None)  # type: ignore[call-arg]
