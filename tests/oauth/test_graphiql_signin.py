"""GraphiQL's "Sign in" as a person meets it: headless Chromium, the real app under uvicorn.

The explorer runs the authorization code flow with PKCE in the browser (our sign-in and consent
pages in between), then sends the token with every request, all under its strict CSP.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions

from app.main import create_app
from app.seed import ensure_demo_client
from app.settings import Settings
from db.engine import Sessions
from db.models import User
from tests.browser import chrome
from tests.conftest import without_cost
from tests.http.test_graphiql_browser import (
    HEADERS_EDITOR,
    QUERY_EDITOR,
    RESPONSE_PANE,
    _console_errors,
    _off_loopback_requests,
    _open_graphiql,
    _run,
    _set_editor,
    _wait,
)
from tests.live_server import LiveServer
from tests.oauth.conftest import PASSWORD


def _status(driver: WebDriver) -> str:
    text: str = driver.find_element(By.ID, "tandem-auth-status").text
    return text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_graphiql_signs_in_with_code_and_pkce(settings: Settings, sessions: Sessions, person: User) -> None:
    async with LiveServer(create_app(settings)) as server:
        await ensure_demo_client(sessions, server.url)  # what `tandem seed` does, for this server's URL
        with chrome() as driver:
            _open_graphiql(driver, f"{server.url}/graphql")
            assert _status(driver) == "Not signed in: requests run anonymously."
            driver.find_element(By.ID, "tandem-sign-in").click()

            _wait(driver, expected_conditions.presence_of_element_located((By.ID, "username")),
                  "the sign-in page did not open")
            assert "/oauth/authorize?" in driver.current_url and "code_challenge_method=S256" in driver.current_url
            driver.find_element(By.ID, "username").send_keys(person.email)
            driver.find_element(By.ID, "password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

            _wait(driver, expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "button[value=allow]")), "the consent page did not open")
            assert "tasks:read" in driver.page_source
            driver.find_element(By.CSS_SELECTOR, "button[value=allow]").click()

            _wait(driver, lambda d: _status(d).startswith("Signed in as Pat"), "GraphiQL did not sign in")
            assert driver.current_url == f"{server.url}/graphql"  # the code left the address bar
            for selector in (QUERY_EDITOR, HEADERS_EDITOR, RESPONSE_PANE):
                _wait(driver, expected_conditions.presence_of_element_located(
                    (By.CSS_SELECTOR, f"{selector} .CodeMirror")), f"GraphiQL did not render {selector}")
            _set_editor(driver, QUERY_EDITOR, "{ viewer { name email } }")
            signed_in = _run(driver)

            driver.find_element(By.ID, "tandem-sign-out").click()
            signed_out = _run(driver)

            stored: str = driver.execute_script(
                "return JSON.stringify([window.localStorage, window.sessionStorage])")
            console = _console_errors(driver)
            off_loopback = _off_loopback_requests(driver)

    assert without_cost(signed_in) == {"data": {"viewer": {"name": "Pat", "email": person.email}}}
    assert without_cost(signed_out) == {"data": {"viewer": None}}
    assert "eyJ" not in stored, "tokens must stay in memory, not in web storage"
    assert console == [], f"console errors (a CSP violation shows up here): {console}"
    assert off_loopback == []
