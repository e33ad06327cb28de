"""Headless Chromium for tests that must see what a person sees (GraphiQL), from Debian's packages.

Selenium is given both binaries explicitly, so selenium-manager never runs: it would try to
download a driver or a browser, and the machines reach only package registries. A missing
binary fails the test under CI (an install step is missing) and skips it elsewhere, with the
apt command either way; `scripts/ensure-chromium` installs both.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_PACKAGES = {CHROMIUM: "chromium", CHROMEDRIVER: "chromium-driver"}

_FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No traffic of the browser's own (updates, sync, safe browsing): the tests assert that
    # every request stays on loopback, and the machines have no other network anyway.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # /dev/shm is small in containers
    "--window-size=1280,900",
]


def require_chromium() -> None:
    """Skip the test (fail it when `CI` is set) if Chromium or chromedriver is not installed."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return
    packages = " ".join(_PACKAGES[path] for path in missing)
    message = (
        f"{', '.join(str(path) for path in missing)} missing: install with "
        f"`apt-get install -y {packages}` (or run scripts/ensure-chromium)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def chrome() -> Iterator[webdriver.Chrome]:
    """A headless Chromium driver with a fresh profile; the browser console and network events
    are kept for `driver.get_log("browser")` and `driver.get_log("performance")`."""
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with tempfile.TemporaryDirectory(prefix="tandem-chromium-") as profile:
        for flag in [*_FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()
