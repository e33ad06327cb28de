"""`/docs` as a person meets it: the real app under uvicorn in headless Chromium. Swagger UI must
render every operation from our own assets, under the page's strict CSP, without one request
leaving loopback; the assets mount serves its allowlist only, and a missing bundle is a 503."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette

from app.graphiql import node_modules_dir
from app.main import create_app
from app.settings import Settings
from rest.docs import DOCS_CSP, routes
from tests.browser import chrome
from tests.live_server import LiveServer

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
OPERATIONS = 6  # in /openapi.json on this branch
TIMEOUT = 30


def _console_errors(driver: WebDriver) -> list[str]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def _off_loopback(driver: WebDriver) -> list[str]:
    urls = []
    entries: list[dict[str, Any]] = driver.get_log("performance")  # type: ignore[no-untyped-call]
    for entry in entries:
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.requestWillBeSent":
            urls.append(event["params"]["request"]["url"])
    network = [url for url in urls if urlsplit(url).scheme in {"http", "https", "ws", "wss"}]
    return [url for url in network if urlsplit(url).hostname not in LOOPBACK]


@SQLITE_ONLY
async def test_docs_render_every_operation_offline_under_the_csp(settings: Settings) -> None:
    async with LiveServer(create_app(settings)) as server:
        with chrome() as driver:
            driver.get(f"{server.url}/docs")
            try:
                WebDriverWait(driver, TIMEOUT).until(
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= OPERATIONS)
            except TimeoutException:
                pytest.fail(f"Swagger UI did not render the operations; console: {_console_errors(driver)}",
                            pytrace=False)
            summaries = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
            title = driver.find_element(By.CSS_SELECTOR, ".info .title").text
            console = _console_errors(driver)
            off_loopback = _off_loopback(driver)
    assert "Tandem REST API" in title
    assert any("/webhooks/{source}" in summary for summary in summaries), summaries
    assert console == [], f"console errors (a CSP violation shows up here): {console}"
    assert off_loopback == []


def _assets_client(node_modules: Path) -> httpx.AsyncClient:
    app = Starlette(routes=routes(node_modules))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://tandem.test")


async def test_page_and_assets() -> None:
    async with _assets_client(node_modules_dir()) as client:
        page = await client.get("/docs")
        bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
        style = await client.get("/docs/assets/swagger-ui.css")
        bootstrap = await client.get("/docs/assets/tandem-docs.js")
        others = [await client.get(path) for path in (
            "/docs/assets/swagger-ui-bundle.js.map", "/docs/assets/index.html", "/docs/assets/../../package.json",
            "/docs/assets/swagger-initializer.js",
        )]
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    assert bundle.status_code == 200, "run `npm ci` to install swagger-ui-dist"
    assert bundle.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert bootstrap.status_code == 200
    assert [response.status_code for response in others] == [404, 404, 404, 404]


async def test_missing_bundle_says_to_run_npm_ci(tmp_path: Path) -> None:
    async with _assets_client(tmp_path) as client:
        response = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert response.status_code == 503
    assert "npm ci" in response.text
