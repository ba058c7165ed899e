"""The Day-0 paved road in one go: install, migrate, doctor, and the mounted control plane.

A real oban node provides the leader, a real uvicorn serves the generated app for the
mount check, and the generated app answers through its own (patched) lifespan.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from oban import Oban

from oban_powertools.cli import main
from oban_powertools.runtime import Runtime
from tests.cli.hostproject import cli_env
from tests.support.seams import make_powertools


@asynccontextmanager
async def oban_leader(database_url: str) -> AsyncIterator[None]:
    """A worker node with queues, which makes it the leader, and the Powertools runtime."""
    pool = await Oban.create_pool(database_url, min_size=1, max_size=3)
    name = f"doctor-{uuid.uuid4().hex[:8]}"
    runtime = Runtime(make_powertools(database_url), declarations=[]).oban_options()
    try:
        async with Oban(pool=pool, queues={"default": 1}, name=name, node=name, **runtime) as oban:
            assert oban.is_leader
            yield
    finally:
        await pool.close()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """The app on a real socket (uvicorn, lifespan on), for as long as the block runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def test_install_migrate_doctor_then_the_mount_answers(
    project: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    env = cli_env(DATABASE_URL=fresh_db_url)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)

    result = runner.invoke(main, ["install", "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    result = await asyncio.to_thread(runner.invoke, main, ["migrate"])
    assert result.exit_code == 0, result.output

    doctor = ["doctor", "--project-dir", str(project), "--json"]
    async with oban_leader(fresh_db_url):
        result = await asyncio.to_thread(runner.invoke, main, doctor)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {
        "database": "ok",
        "oban_schema": "ok",
        "migrations": "ok",
        "config": "ok",
        "auth": "ok",
        "display": "ok",
        "mount": "skip",  # no --url
        "leader": "ok",
        "bridge": "skip",  # not configured
    }

    # The generated app, through its own lifespan: the pool opens, the mount answers,
    # and the deny-by-default starter turns an anonymous visitor away.
    app = importlib.import_module("myapp.main").app
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        response = await client.get("/ops/jobs/")
        assert response.status_code == 401
        assert (await client.get("/")).json() == {"hello": "world"}
        assert (await client.get("/nope")).status_code == 404

    # The same app on a real socket, checked by doctor --url (trailing slash omitted). A
    # fresh import: a Powertools whose pool was closed cannot be opened again.
    for name in [m for m in sys.modules if m == "myapp" or m.startswith("myapp.")]:
        del sys.modules[name]
    app = importlib.import_module("myapp.main").app
    with serving(app) as base:
        result = await asyncio.to_thread(
            runner.invoke, main, [*doctor, "--skip", "leader", "--url", f"{base}/ops/jobs"]
        )
        assert result.exit_code == 0, result.output
        mount = next(c for c in json.loads(result.output)["checks"] if c["name"] == "mount")
        assert mount["status"] == "ok" and "answers 401: mounted" in mount["detail"]

        result = await asyncio.to_thread(
            runner.invoke, main, [*doctor, "--skip", "leader", "--url", f"{base}/elsewhere/"]
        )
        assert result.exit_code == 1
        mount = next(c for c in json.loads(result.output)["checks"] if c["name"] == "mount")
        assert mount["status"] == "fail" and "404" in mount["detail"]
