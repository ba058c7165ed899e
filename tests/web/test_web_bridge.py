"""The Oban Web bridge: absent without configuration, read-only and redacted with it.

The upstream is a real HTTP server (a small Starlette app under uvicorn on 127.0.0.1)
standing in for the Oban Web dashboard.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from oban_powertools import Powertools
from oban_powertools.web.security import SECURITY_HEADERS
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, build_powertools, client, host_app, seed_cron

Client = Callable[..., httpx.AsyncClient]

DASHBOARD = """<!doctype html><html><head><title>Oban</title>
<script>window.liveSocket = true</script></head>
<body class="dash"><h1>Oban Web</h1>
<pre>%{&quot;password&quot; =&gt; &quot;hunter2-secret&quot;, &quot;to&quot; =&gt; &quot;ana@example.com&quot;}</pre>
<a href="/jobs/1">job 1</a></body></html>"""


@dataclass
class Upstream:
    url: str
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen = Upstream("")

    async def record(request: Request) -> None:
        seen.requests.append((request.method, request.url.path, dict(request.headers)))

    async def home(request: Request) -> Response:
        await record(request)
        response = HTMLResponse(DASHBOARD)
        response.set_cookie("_oban_web_key", "session-value")
        response.headers["content-security-policy"] = "script-src 'unsafe-inline'"
        return response

    async def job(request: Request) -> Response:
        await record(request)
        return JSONResponse({"id": 1, "args": {"password": "hunter2-secret", "to": "ana"}})

    async def moved(request: Request) -> Response:
        await record(request)
        return RedirectResponse(f"{seen.url}/jobs/1", status_code=302)

    async def away(request: Request) -> Response:
        await record(request)
        return RedirectResponse("https://evil.example/phish", status_code=302)

    async def logo(request: Request) -> Response:
        await record(request)
        return Response(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), media_type="image/png")

    async def write(request: Request) -> Response:
        await record(request)
        return Response("changed", status_code=200)

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/jobs/1", job),
            Route("/moved", moved),
            Route("/away", away),
            Route("/logo.png", logo),
            Route("/jobs/1/cancel", write, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    seen.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started, within=5, what="the upstream test server listens")
    try:
        yield seen
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def bridged(db_url: str, upstream: Upstream) -> AsyncIterator[Powertools]:
    powertools = build_powertools(db_url, bridge_url=upstream.url)
    try:
        yield powertools
    finally:
        await powertools.stop()


async def test_no_bridge_without_configuration(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    for path in ("/oban", "/oban/", "/oban/jobs/1"):
        response = await ops.get(MOUNT + path)
        assert response.status_code == 404, path
    for path in ("/", "/cron", "/forensics?resource_type=cron_entry&resource_id=nightly_sync"):
        page = (await ops.get(MOUNT + path)).text
        assert "/oban" not in page, path
        assert "Oban Web" not in page, path


async def test_bridge_forwards_reads_only_and_redacts(
    bridged: Powertools, upstream: Upstream, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    app = host_app(bridged)
    async with client(app, "ops-demo", cookie="host_session=secret-session") as ops:
        landing = await ops.get(f"{MOUNT}/oban")
        assert landing.status_code == 200
        assert "Oban Web bridge" in landing.text
        assert "Inspection only" in landing.text
        assert f'href="{MOUNT}/oban/"' in landing.text

        overview = await ops.get(f"{MOUNT}/")
        assert f'href="{MOUNT}/oban"' in overview.text  # linked only when configured

        page = await ops.get(f"{MOUNT}/oban/")
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value  # the dashboard's own CSP is replaced
        assert page.headers["x-powertools-posture"] == "Inspection only"
        assert "Oban Web bridge · Inspection only" in page.text
        assert "hunter2-secret" not in page.text
        assert "&quot;password&quot; =&gt; &quot;[redacted]&quot;" in page.text
        assert "ana@example.com" in page.text

        data = await ops.get(f"{MOUNT}/oban/jobs/1")
        assert data.status_code == 200
        assert data.json()["args"] == {"password": "[redacted]", "to": "ana"}

        image = await ops.get(f"{MOUNT}/oban/logo.png")
        assert image.content.endswith(bytes(range(256)))  # binary streamed untouched

        moved = await ops.get(f"{MOUNT}/oban/moved")
        assert moved.status_code == 302
        assert moved.headers["location"] == f"{MOUNT}/oban/jobs/1"
        away = await ops.get(f"{MOUNT}/oban/away")
        assert away.headers["location"] == f"{MOUNT}/oban/"

        head = await ops.head(f"{MOUNT}/oban/")
        assert head.status_code == 200

        before = len(upstream.requests)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            refused = await ops.request(method, f"{MOUNT}/oban/jobs/1/cancel")
            assert refused.status_code == 405, method
            assert "GET" in refused.headers["allow"]
        assert len(upstream.requests) == before  # nothing reached the dashboard

    # The host's cookies and credentials never reach the dashboard.
    for _method, _path, headers in upstream.requests:
        assert "cookie" not in headers
        assert "authorization" not in headers
        assert "x-test-user" not in headers
    assert {m for m, _p, _h in upstream.requests} <= {"GET", "HEAD"}


async def test_bridge_requires_view_oban_web(bridged: Powertools, upstream: Upstream) -> None:
    app = host_app(bridged)
    async with client(app, "ops-viewer") as viewer:
        assert (await viewer.get(f"{MOUNT}/oban/")).status_code == 200
    for user, status in (("ops-guest", 403), (None, 401)):
        async with client(app, user) as denied:
            for path in ("/oban", "/oban/", "/oban/jobs/1"):
                response = await denied.get(MOUNT + path)
                assert response.status_code == status, (user, path)
                assert "hunter2" not in response.text
                assert "ana" not in response.text
    assert all(path != "/jobs/1" for _m, path, _h in upstream.requests)


async def test_bridge_reports_an_unreachable_dashboard(db_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    powertools = build_powertools(db_url, bridge_url=f"http://127.0.0.1:{port}")
    try:
        async with client(host_app(powertools), "ops-demo") as ops:
            response = await ops.get(f"{MOUNT}/oban/")
            assert response.status_code == 502
            assert "did not answer" in response.text
            assert response.headers["x-frame-options"] == "DENY"
    finally:
        await powertools.stop()
