"""The Litestar example host (examples/litestar_host): its sign-in feeds the auth seam, an
operator pauses nightly_sync through the HTTP flow and the audit page shows it.

In process through httpx's ASGI transport (with the app's lifespan run as a server does),
and as documented: ``uvicorn examples.litestar_host.app:app`` beside
``python -m examples.litestar_host.worker``, real processes on a real port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from examples.litestar_host import accounts
from examples.litestar_host.app import create_app
from examples.litestar_host.powertools_config import build_config
from oban_powertools import Powertools
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, csrf_of, scalar, seed_cron, token_of
from tests.web.test_contrib_litestar import lifespan_of

ROOT = Path(__file__).resolve().parents[2]
WORKER = "examples.litestar_host.workers.NightlySync"


@pytest.fixture
async def host(db_url: str) -> AsyncIterator[Any]:
    powertools = Powertools(build_config(db_url))
    app = create_app(powertools)
    async with lifespan_of(app):
        yield app


def browser(app: Any = None, base_url: str = "http://testserver") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app) if app is not None else None
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers={"origin": base_url})


async def sign_in(http: httpx.AsyncClient, username: str, password: str = "demo") -> None:
    response = await http.post(
        "/login", data={"username": username, "password": password, "next": f"{MOUNT}/"}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{MOUNT}/"
    assert accounts.COOKIE in http.cookies


async def pause_nightly_sync(http: httpx.AsyncClient) -> str:
    """preview → reason → confirm on the cron entry's page; the result page's path."""
    page = await http.get(f"{MOUNT}/cron/nightly_sync")
    assert page.status_code == 200, page.text
    assert ">Pause cron entry</button>" in page.text
    preview = await http.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "pause_cron_entry",
            "target": "nightly_sync",
            "return_to": "/cron/nightly_sync",
        },
    )
    assert preview.status_code == 200, preview.text
    assert "Future claims stop until resumed" in preview.text
    confirmed = await http.post(
        f"{MOUNT}/actions/confirm",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": token_of(preview.text),
            "reason": "upstream outage",
        },
    )
    assert confirmed.status_code == 303, confirmed.text
    location = confirmed.headers["location"]
    assert location.startswith(f"{MOUNT}/actions/results/")
    return location


async def assert_audited(http: httpx.AsyncClient, conn: psycopg.AsyncConnection[Any]) -> None:
    assert await scalar(
        conn, "SELECT paused_by_id FROM powertools_cron_entries WHERE name = 'nightly_sync'"
    ) == ("ops-demo")
    audit = await http.get(f"{MOUNT}/audit")
    assert audit.status_code == 200
    assert "cron.paused" in audit.text
    assert "nightly_sync" in audit.text and "upstream outage" in audit.text
    assert "Ops Demo" in audit.text


async def test_the_sign_in_is_what_the_auth_seam_reads(host: Any) -> None:
    async with browser(host) as anonymous:
        refused = await anonymous.get(f"{MOUNT}/")
        # Config.login_url: an anonymous visitor is sent to the host's sign-in page.
        assert refused.status_code == 303
        assert refused.headers["location"] == "/login?next=%2Fops%2Fjobs%2F"
        wrong = await anonymous.post("/login", data={"username": "ops-demo", "password": "x"})
        assert wrong.status_code == 401 and accounts.COOKIE not in anonymous.cookies
    async with browser(host) as ops:
        await sign_in(ops, "ops-demo")
        overview = await ops.get(f"{MOUNT}/")
        assert overview.status_code == 200 and "Ops Demo" in overview.text
        assert "Signed in as Ops Demo" in (await ops.get("/")).text
    async with browser(host) as guest:
        await sign_in(guest, "ops-guest")
        assert (await guest.get(f"{MOUNT}/")).status_code == 403
    async with browser(host) as viewer:
        await sign_in(viewer, "ops-viewer")
        cron = await viewer.get(f"{MOUNT}/cron")
        assert cron.status_code == 200 and ">Pause cron entry</button>" not in cron.text


async def test_a_forged_or_expired_cookie_signs_nobody_in(host: Any) -> None:
    user = accounts.find("ops-demo")
    assert user is not None
    good = accounts.session_cookie(user)
    name, issued, signature = good.split(":")
    forged = f"{name}:{issued}:{'0' * len(signature)}"
    expired = accounts.session_cookie(user, now=time.time() - accounts.MAX_AGE - 60)
    for value, status in ((good, 200), (forged, 303), (expired, 303), ("ops-demo", 303)):
        async with browser(host) as http:
            http.cookies.set(accounts.COOKIE, value)
            assert (await http.get(f"{MOUNT}/")).status_code == status, value


async def test_an_operator_pauses_nightly_sync_and_the_audit_shows_it(
    host: Any, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn, worker=WORKER)
    async with browser(host) as ops:
        await sign_in(ops, "ops-demo")
        result = await ops.get(await pause_nightly_sync(ops))
        assert result.status_code == 200 and "cron.paused" in result.text
        await assert_audited(ops, conn)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def processes(
    commands: dict[str, list[str]], env: dict[str, str], logs: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("wb")
            running[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        yield running
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


async def test_the_documented_commands_serve_the_host_and_its_worker(
    db_url: str, conn: psycopg.AsyncConnection[Any], tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DATABASE_URL=db_url, PYTHONUNBUFFERED="1")
    commands = {
        "web": [
            *(sys.executable, "-m", "uvicorn", "examples.litestar_host.app:app"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        "worker": [sys.executable, "-m", "examples.litestar_host.worker"],
    }
    with processes(commands, env, tmp_path) as running:

        async def answers() -> bool:
            assert all(p.poll() is None for p in running.values()), _tails(tmp_path)
            try:
                async with httpx.AsyncClient(timeout=1) as probe:
                    return (await probe.get(f"{base}/login")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(answers, within=30, what=f"the host answers\n{_tails(tmp_path)}")
        # The worker's runtime stores the cron entry declared in the host's code.
        await eventually(
            lambda: _entry_stored(conn),
            within=30,
            what=f"the worker stores nightly_sync\n{_tails(tmp_path)}",
        )
        async with browser(base_url=base) as ops:
            await sign_in(ops, "ops-demo")
            result = await ops.get(await pause_nightly_sync(ops))
            assert result.status_code == 200
            await assert_audited(ops, conn)
        running["web"].send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert running["web"].wait(timeout=15) in (0, -signal.SIGTERM), _tails(tmp_path)
    web_log = (tmp_path / "web.log").read_text()
    assert "Application startup complete" in web_log and "Traceback" not in web_log, web_log
    assert "Application shutdown complete" in web_log, web_log


async def _entry_stored(conn: psycopg.AsyncConnection[Any]) -> bool:
    worker = await scalar(
        conn, "SELECT worker FROM powertools_cron_entries WHERE name = 'nightly_sync'"
    )
    return bool(worker == WORKER)
