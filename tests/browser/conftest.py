"""Browser tests: the example host served for real, driven by Debian's Chromium.

The host runs as the demo runs it: a uvicorn web process and the worker process (oban
queues, the scheduler leader), on a database cloned from the migrated template. Playwright
uses the sync API and the system ``chromium``; it never downloads a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright

from examples.fastapi_host.launch import serve
from tests.support.db import ROOT, TEMPLATE, admin_execute, with_database

ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class LiveHost:
    base_url: str
    database_url: str
    log_dir: Path

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="module")
def live_host(
    server_url: str, template_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveHost]:
    name = f"b_{uuid.uuid4().hex[:12]}"
    admin_execute(server_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    database_url = with_database(server_url, name)
    log_dir = tmp_path_factory.mktemp("host-logs")
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    subprocess.run(
        [sys.executable, "-m", "examples.fastapi_host.seed"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    try:
        with serve(database_url, log_dir) as base:
            yield LiveHost(base, database_url, log_dir)
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API runs an event loop on the main thread while it is
    # open, which async tests elsewhere in the session must not inherit.
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is required for browser tests (tools/ensure-chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        # Failed loads are judged per response below, where the URL is known.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(msg.text)

    def on_response(response: Response) -> None:
        request = response.request
        if response.status < 400 or request.resource_type == "document":
            return  # tests navigate to 403/404 pages on purpose and assert on them
        if request.url.endswith("/favicon.ico"):
            return  # the browser's own probe; the example host serves no icon
        errors.append(f"{response.status} {request.method} {request.url}")

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", on_console)
    page.on("response", on_response)
    yield page
    context.close()
    # A CSP violation, a script error or a broken asset fails the test that caused it.
    assert errors == [], errors


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, host: LiveHost, username: str, password: str = "demo") -> None:
    page.goto(host.url("/login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")
