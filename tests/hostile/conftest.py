"""Fixtures of the hostile suite: a Powertools with the hostile seams, and a real Oban Web
stand-in (an HTTP server on 127.0.0.1) for the bridge."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from oban_powertools import Powertools
from tests.hostile.world import ARG_MARK, SECRET, Upstream, build
from tests.support.waiting import eventually

# What the dashboard shows: job data, a secret among it, in the notations Oban Web uses.
DASHBOARD = (
    "<!doctype html><html><head><title>Oban</title></head><body><h1>Oban Web</h1>"
    f"<pre>%{{&quot;password&quot; =&gt; &quot;{SECRET}&quot;, "
    f"&quot;note&quot; =&gt; &quot;{ARG_MARK}&quot;}}</pre></body></html>"
)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    seen = Upstream("")

    async def home(request: Request) -> Response:
        seen.paths.append(request.url.path)
        return HTMLResponse(DASHBOARD)

    async def job(request: Request) -> Response:
        seen.paths.append(request.url.path)
        return JSONResponse({"id": 1, "args": {"password": SECRET, "note": ARG_MARK}})

    async def text(request: Request) -> Response:
        seen.paths.append(request.url.path)
        return Response(f"args: password={SECRET} note={ARG_MARK}", media_type="text/plain")

    app = Starlette(routes=[Route("/", home), Route("/jobs/1", job), Route("/jobs/1/log", text)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    seen.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
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
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = build(db_url)
    try:
        await powertools.start()
        yield powertools
    finally:
        await powertools.stop()


@pytest.fixture
async def bridged(db_url: str, upstream: Upstream) -> AsyncIterator[Powertools]:
    powertools = build(db_url, bridge_url=upstream.url)
    try:
        await powertools.start()
        yield powertools
    finally:
        await powertools.stop()
