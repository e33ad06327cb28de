"""GraphiQL as a person meets it: the real app under uvicorn, opened in headless Chromium.

The page must load from our own assets only, under its strict Content-Security-Policy, and run
a query with a bearer token pasted into the headers editor. The assets mount is also checked
in-process: an allowlist, and a 503 that says what to install instead of a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette

from app.graphiql import graphiql_assets, node_modules_dir
from app.main import create_app
from app.settings import Settings
from db.models import User
from tests.browser import chrome
from tests.live_server import LiveServer

T = TypeVar("T")

QUERY_EDITOR = ".graphiql-query-editor"
# The visible editor under the query: the headers editor, which the page opens by default.
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"
RESPONSE_PANE = ".graphiql-response"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT = 30


def _editor(selector: str) -> str:
    # GraphiQL 3 uses CodeMirror 5, which hangs its instance on the wrapper element.
    return f"document.querySelector({json.dumps(selector + ' .CodeMirror')}).CodeMirror"


def _set_editor(driver: WebDriver, selector: str, text: str) -> None:
    driver.execute_script(f"{_editor(selector)}.setValue(arguments[0])", text)


def _get_editor(driver: WebDriver, selector: str) -> str:
    value: str = driver.execute_script(f"return {_editor(selector)}.getValue()")
    return value


def _wait(driver: WebDriver, condition: Callable[[WebDriver], T | Literal[False]], what: str) -> T:
    try:
        result: T = WebDriverWait(driver, TIMEOUT).until(condition)
    except TimeoutException:
        # Read the console only on failure: reading it empties it for the final check.
        pytest.fail(f"{what} within {TIMEOUT} s; browser console: {_console_errors(driver)}", pytrace=False)
    return result


def _open_graphiql(driver: WebDriver, url: str) -> None:
    """Load the page and wait until GraphiQL can run a query.

    GraphiQL creates its editors one by one after the first render, and its run button does
    nothing until the response editor exists, so wait for every editor, not just the first.
    """
    driver.get(url)
    for selector in (QUERY_EDITOR, HEADERS_EDITOR, RESPONSE_PANE):
        located = expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, f"{selector} .CodeMirror")
        )
        _wait(driver, located, f"GraphiQL did not render {selector}")
    active_tool = driver.find_element(By.CSS_SELECTOR, ".graphiql-editor-tools button.active")
    assert active_tool.get_attribute("data-name") == "headers", "the headers editor should be open on load"
    # The template lands once GraphiQL has wired its editors together.
    _wait(driver, lambda d: "Bearer" in _get_editor(d, HEADERS_EDITOR), "the headers template did not appear")


def _run(driver: WebDriver) -> dict[str, Any]:
    """Press the run button and wait for the response pane to show a JSON result."""
    # Clear the previous result first, or a second run would read the first one back.
    _set_editor(driver, RESPONSE_PANE, "")
    driver.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()

    def response(d: WebDriver) -> dict[str, Any] | Literal[False]:
        try:
            body: dict[str, Any] = json.loads(_get_editor(d, RESPONSE_PANE))
        except ValueError:  # still empty, or a loading placeholder
            return False
        return body

    return _wait(driver, response, "no result in the response pane")


def _console_errors(driver: WebDriver) -> list[str]:
    """Console errors; a Content-Security-Policy violation is reported here as an error."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def _off_loopback_requests(driver: WebDriver) -> list[str]:
    """Every network URL the page asked for (fetches, scripts, WebSockets) that left loopback."""
    urls: list[str] = []
    entries: list[dict[str, Any]] = driver.get_log("performance")  # type: ignore[no-untyped-call]
    for entry in entries:
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.requestWillBeSent":
            urls.append(event["params"]["request"]["url"])
        elif event["method"] == "Network.webSocketCreated":
            urls.append(event["params"]["url"])
    # data: fonts and the browser's own chrome:// pages are not network requests.
    network = [url for url in urls if urlsplit(url).scheme in {"http", "https", "ws", "wss"}]
    return [url for url in network if urlsplit(url).hostname not in LOOPBACK]


# -- the page in Chromium, against the real app --------------------------------------------------


# The page does not depend on the database: one backend is enough for a browser run.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_graphiql_runs_queries_offline_under_its_csp(
    settings: Settings, alice: User, token_for: Callable[..., str]
) -> None:
    token = token_for(alice)
    # Its own app, not the `app` fixture's: uvicorn runs the lifespan in its thread and loop.
    async with LiveServer(create_app(settings)) as server:
        with chrome() as driver:
            _open_graphiql(driver, f"{server.url}/graphql")

            # The untouched "Bearer " template is not sent: the request runs anonymously.
            _set_editor(driver, QUERY_EDITOR, "{ __typename }")
            anonymous = _run(driver)

            _set_editor(driver, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
            _set_editor(driver, QUERY_EDITOR, "{ viewer { name } }")
            signed_in = _run(driver)

            stored: str = driver.execute_script("return JSON.stringify(window.localStorage)")
            console = _console_errors(driver)
            off_loopback = _off_loopback_requests(driver)

    assert anonymous.get("errors") is None and anonymous["data"] == {"__typename": "Query"}
    assert signed_in.get("errors") is None and signed_in["data"] == {"viewer": {"name": "Alice"}}
    assert console == [], f"console errors (a CSP violation shows up here): {console}"
    assert off_loopback == []
    assert token not in stored, "the bearer token must not be kept in localStorage"


# -- the assets mount, in-process ---------------------------------------------------------------


def _assets_client(node_modules: Path) -> httpx.AsyncClient:
    app = Starlette(routes=[graphiql_assets(node_modules)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://tandem.test")


async def test_assets_serve_only_the_allowlist() -> None:
    async with _assets_client(node_modules_dir()) as client:
        script = await client.get("/graphiql/vendor/graphiql.min.js")
        style = await client.get("/graphiql/vendor/graphiql.min.css")
        bootstrap = await client.get("/graphiql/tandem-graphiql.js")
        others = [
            await client.get(path)
            for path in (
                "/graphiql/vendor/graphiql.min.js.map",
                "/graphiql/vendor/../../package.json",
                "/graphiql/vendor/%2e%2e/%2e%2e/package.json",
                "/graphiql/",
            )
        ]
    assert script.status_code == 200, "run `npm ci` to install the GraphiQL bundles"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.headers["cache-control"] == "public, max-age=86400"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert bootstrap.status_code == 200
    assert [response.status_code for response in others] == [404, 404, 404, 404]


async def test_missing_bundle_says_to_run_npm_ci(tmp_path: Path) -> None:
    async with _assets_client(tmp_path) as client:
        response = await client.get("/graphiql/vendor/react.production.min.js")
    assert response.status_code == 503
    assert "npm ci" in response.text
