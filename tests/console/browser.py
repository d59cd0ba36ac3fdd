"""Browser-test helpers: headless Chromium (Debian's `chromium` and `chromium-driver`, installed
by `make system-deps`) driven by Selenium, against a real registry process with a Celery worker
(tests/workers/platform.py).

Selenium is pointed at /usr/bin/chromium and /usr/bin/chromedriver and SE_OFFLINE is set, so
Selenium Manager never goes to the internet. Chromium runs with --no-sandbox: CI runs as root.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import create_engine, text

from registry.console.session import COOKIE
from tests.conftest import require_env
from tests.live import _cli
from tests.workers.platform import Platform, tiny_base_model

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 900
SHOTS = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
T = TypeVar("T")


@dataclass
class Identity:
    """A client that signs in to the console: its credentials and its browser (made lazily)."""

    name: str
    client_id: str
    secret: str
    base_url: str
    _driver: WebDriver | None = field(default=None, repr=False)

    @property
    def driver(self) -> WebDriver:
        if self._driver is None:
            self._driver = new_driver()
        return self._driver

    def sign_in(self) -> None:
        """Through the sign-in form, as a person would; lands on the console's home page."""
        d = self.driver
        d.get(f"{self.base_url}/console/login")
        d.find_element(By.ID, "client_id").send_keys(self.client_id)
        d.find_element(By.ID, "client_secret").send_keys(self.secret)
        d.find_element(By.ID, "sign-in").click()
        wait_for(d, lambda: "/console/login" not in d.current_url, "sign-in to leave the form")
        assert d.get_cookie(COOKIE) is not None, d.page_source[:2000]

    def open(self, path: str) -> WebDriver:
        self.driver.get(f"{self.base_url}{path}")
        return self.driver

    @property
    def cookie(self) -> str:
        found = self.driver.get_cookie(COOKIE)
        assert found is not None, f"{self.name} is not signed in"
        return str(found["value"])

    def http(self) -> httpx.Client:
        """An HTTP client with this browser's session cookie (to read statuses and forge posts)."""
        return httpx.Client(
            base_url=self.base_url,
            cookies={COOKIE: self.cookie},
            timeout=30,
            trust_env=False,
            follow_redirects=False,
        )

    def quit(self) -> None:
        if self._driver is not None:
            self._driver.quit()
            self._driver = None


@dataclass
class ConsoleWorld:
    """The live platform and the four clients that sign in: ops, an auditor, acme, globex."""

    platform: Platform
    ops: Identity
    auditor: Identity
    acme: Identity
    globex: Identity

    @property
    def base_url(self) -> str:
        return self.platform.live.base_url

    def identities(self) -> list[Identity]:
        return [self.ops, self.auditor, self.acme, self.globex]

    def sql(self, sql: str, **params: Any) -> list[Any]:
        engine = create_engine(self.platform.live.env["LORAPLEX_DATABASE_URL"])
        try:
            with engine.begin() as conn:
                result = conn.execute(text(sql), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()


def new_driver() -> WebDriver:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: `make system-deps` installs chromium, chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root (CI) cannot use Chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def wait_for(driver: WebDriver, check: Callable[[], T], what: str, timeout: float = 20) -> T:
    """Poll `check` until it returns something truthy (stale elements count as not yet)."""

    def attempt(_: WebDriver) -> T | bool:
        try:
            return check()
        except StaleElementReferenceException:
            return False

    try:
        found: T = WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt)  # type: ignore[assignment]
        return found
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what} on {driver.current_url}:\n"
            + driver.find_element(By.TAG_NAME, "body").text[:3000]
        ) from None


def one(driver: WebDriver | WebElement, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def every(driver: WebDriver | WebElement, css: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, css)


def error_page(driver: WebDriver) -> tuple[str, str]:
    """(heading, message) of the console's error page."""
    return one(driver, "main h1").text, one(driver, "#error-message").text


def screenshot(driver: WebDriver, name: str) -> Path:
    """The whole page (not just the window) as build/console-screenshots/<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = int(
        driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        )
    )
    metrics = {"width": WIDTH, "height": max(height, HEIGHT), "deviceScaleFactor": 1}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "mobile": False})  # type: ignore[attr-defined]
    try:
        path = SHOTS / f"{name}.png"
        assert driver.save_screenshot(str(path)), path
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]
    return path


def _identity(name: str, creds: dict[str, str], base_url: str) -> Identity:
    return Identity(name, creds["client_id"], creds["client_secret"], base_url)


@pytest.fixture(scope="module")
def console_world(pg_admin_url: str, s3_endpoint: str) -> Iterator[ConsoleWorld]:
    """A registry process with a Celery worker; acme (the Platform's), globex and an auditor
    client (made with `loraplex admin create-client`, as ops would)."""
    redis_url = require_env("LORAPLEX_TEST_REDIS_URL")
    platform = Platform(pg_admin_url, s3_endpoint, redis_url, tiny_base_model())
    world = None
    try:
        p, url = platform, platform.live.base_url
        p.ok(
            p.http.post(
                "/v1/tenants", json={"slug": "globex", "display_name": "Globex"}, headers=p.ops
            )
        )
        globex = p.ok(p.http.post("/v1/tenants/globex/clients", json={}, headers=p.ops))
        out = _cli(p.live.env, "admin", "create-client", "--role", "auditor", "--name", "eve")
        auditor = json.loads(out.splitlines()[-1])
        ops = {"client_id": p.live.client_id, "client_secret": p.live.client_secret}
        world = ConsoleWorld(
            platform,
            ops=_identity("ops", ops, url),
            auditor=_identity("auditor", auditor, url),
            acme=_identity("acme", p.acme_client, url),
            globex=_identity("globex", globex, url),
        )
        yield world
    finally:
        for who in world.identities() if world else []:
            who.quit()
        platform.close()


def poll(check: Callable[[], T], what: str, timeout: float = 60, every_s: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every_s)
