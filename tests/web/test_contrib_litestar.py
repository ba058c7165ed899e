"""The Litestar glue: the plugin's mount keeps every link below /ops/jobs, and its lifespan
opens and closes the library's pool with the Litestar app (its start-up hooks included)."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from litestar import Litestar, asgi, get
from litestar.config.csrf import CSRFConfig
from litestar.types import Receive, Scope, Send

from oban_powertools import Powertools
from oban_powertools.contrib.litestar import PowertoolsPlugin, mounted_scope
from oban_powertools.errors import ConfigError
from tests.support.waiting import eventually
from tests.web.helpers import (
    MOUNT,
    ORIGIN,
    csrf_of,
    insert_job,
    scalar,
    seed_cron,
    token_of,
)

# Every attribute a page links, loads or submits through.
LINK = re.compile(r'\b(href|src|action|hx-get|hx-post|formaction)="([^"]*)"')
FOLLOWED = ("href", "src", "hx-get")  # the ones a GET follows


def litestar_host(powertools: Powertools, **options: Any) -> Litestar:
    @get("/")
    async def home() -> str:
        return "served by the host"

    return Litestar(route_handlers=[home], plugins=[PowertoolsPlugin(powertools)], **options)


def client(app: Any, user: str | None = "ops-demo", *, root_path: str = "") -> httpx.AsyncClient:
    headers = {"origin": ORIGIN}
    if user:
        headers["x-test-user"] = user
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, root_path=root_path),
        base_url=ORIGIN,
        headers=headers,
    )


def links(page: str) -> list[tuple[str, str]]:
    return [(attribute, html.unescape(value)) for attribute, value in LINK.findall(page)]


async def crawl(http: httpx.AsyncClient, start: str, below: str) -> dict[str, int]:
    """GET ``start`` and every page it links, and theirs; assert each link stays ``below``."""
    seen: dict[str, int] = {}
    queue = [start]
    while queue and len(seen) < 60:
        url = queue.pop(0)
        if url in seen:
            continue
        response = await http.get(url)
        seen[url] = response.status_code
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        for attribute, target in links(response.text):
            if target.startswith("#"):
                continue  # a place on the same page
            parts = urlsplit(target)
            path = parts.path
            assert parts.netloc in ("", urlsplit(ORIGIN).netloc), f"{url} links {target!r}"
            assert path == below or path.startswith(below + "/"), (
                f"{url} links {attribute}={target!r}, outside {below}"
            )
            if attribute in FOLLOWED and target not in seen:
                queue.append(target.split("#")[0])
    return seen


async def seed(conn: psycopg.AsyncConnection[Any]) -> None:
    await seed_cron(conn)
    await insert_job(conn, state="retryable", errors=[{"attempt": 1, "error": "boom"}], attempt=1)
    await insert_job(conn, state="discarded", worker="app.Export", queue="exports", attempt=20)


@pytest.mark.parametrize("root_path", ["", "/behind-proxy"])
async def test_every_link_on_every_page_stays_below_the_mount(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any], root_path: str
) -> None:
    await seed(conn)
    below = root_path + MOUNT
    async with client(litestar_host(powertools), root_path=root_path) as ops:
        overview = await ops.get(below + "/")
        assert overview.status_code == 200 and "Overview" in overview.text
        assert links(overview.text), "the overview links nothing"
        seen = await crawl(ops, below + "/", below)
    assert {url for url, status in seen.items() if status != 200} == set(), seen
    # The crawl reached the page families and the static assets through the mount.
    for page in ("/cron", "/cron/nightly_sync", "/queues", "/jobs", "/audit", "/forensics"):
        assert below + page in seen, sorted(seen)
    assert any(url.startswith(below + "/static/") for url in seen), sorted(seen)


async def test_litestar_own_mount_alone_links_outside_it(powertools: Powertools) -> None:
    # Why the plugin rewrites the scope: a bare is_mount handler hands the control plane
    # the path below the mount and leaves root_path empty, so links leave /ops/jobs.
    control_plane = powertools.asgi_app()

    @asgi(MOUNT, is_mount=True, copy_scope=True)
    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        await control_plane(scope, receive, send)  # type: ignore[arg-type]

    async with client(Litestar(route_handlers=[bare])) as ops:
        page = await ops.get(f"{MOUNT}/")
    assert page.status_code == 200
    assert 'href="/cron"' in page.text and f'href="{MOUNT}/cron"' not in page.text


async def test_paths_reach_the_control_plane_as_under_starlette_mount(
    powertools: Powertools,
) -> None:
    async with client(litestar_host(powertools)) as ops:
        # Without the trailing slash, like Starlette: a redirect to the overview below it.
        bare = await ops.get(MOUNT)
        assert bare.status_code in (307, 308)
        assert urlsplit(bare.headers["location"]).path == f"{MOUNT}/"
        # Litestar appends a slash below a mount; the control plane sees the path as sent.
        css = await ops.get(f"{MOUNT}/static/powertools.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        missing = await ops.get(f"{MOUNT}/cron/no%20such%20entry")
        assert missing.status_code == 404 and "No such cron entry" in missing.text
        # Everything else is still the host's.
        assert (await ops.get("/")).text == "served by the host"


def test_mounted_scope_without_raw_path_drops_the_slash_litestar_added() -> None:
    scope: dict[str, Any] = {"type": "http", "path": "/cron/", "root_path": "/pre"}
    child = mounted_scope(scope, "/ops/jobs")
    assert (child["path"], child["root_path"]) == ("/pre/ops/jobs/cron", "/pre/ops/jobs")
    root = mounted_scope({"type": "http", "path": "/", "root_path": ""}, "/ops/jobs")
    assert (root["path"], root["root_path"]) == ("/ops/jobs/", "/ops/jobs")
    assert scope["path"] == "/cron/"  # the host's scope is left as it was


async def test_anonymous_is_refused_and_a_guest_forbidden(powertools: Powertools) -> None:
    app = litestar_host(powertools)
    async with client(app, None) as anonymous, client(app, "ops-guest") as guest:
        assert (await anonymous.get(f"{MOUNT}/")).status_code == 401
        assert (await anonymous.get(f"{MOUNT}/cron")).status_code == 401
        assert (await guest.get(f"{MOUNT}/")).status_code == 403
        assert (await guest.get(f"{MOUNT}/audit")).status_code == 403


async def _pause_nightly_sync(ops: httpx.AsyncClient, prefix: str = MOUNT) -> httpx.Response:
    page = await ops.get(f"{prefix}/cron/nightly_sync")
    assert page.status_code == 200, page.text
    preview = await ops.post(
        f"{prefix}/actions/preview",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "pause_cron_entry",
            "target": "nightly_sync",
            "return_to": "/cron/nightly_sync",
        },
    )
    assert preview.status_code == 200, preview.text
    return await ops.post(
        f"{prefix}/actions/confirm",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": token_of(preview.text),
            "reason": "upstream outage",
        },
    )


async def test_litestar_csrf_middleware_leaves_the_control_plane_its_own_check(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    app = litestar_host(powertools, csrf_config=CSRFConfig(secret="host-csrf-secret"))
    async with client(app) as ops:
        confirmed = await _pause_nightly_sync(ops)
        assert confirmed.status_code == 303, confirmed.text
        assert confirmed.headers["location"].startswith(f"{MOUNT}/actions/results/")
        # The control plane's own token is still required.
        forged = await ops.post(
            f"{MOUNT}/actions/preview",
            data={"csrf_token": "forged", "action": "resume_cron_entry", "target": "nightly_sync"},
        )
        assert forged.status_code == 403
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is True
    assert await scalar(conn, "SELECT count(*) FROM powertools_audit_events") == 1


@asynccontextmanager
async def lifespan_of(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan as a server does: startup, then shutdown on exit."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(from_app.get(), 10)
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        stopped = await asyncio.wait_for(from_app.get(), 10)
        assert stopped["type"] == "lifespan.shutdown.complete", stopped
        await asyncio.wait_for(task, 10)


async def pool_connections(conn: psycopg.AsyncConnection[Any]) -> int:
    # Backends on this test's database other than the test's own connection.
    return int(
        await scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    )


async def test_the_lifespan_opens_and_closes_the_pool_with_the_app(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    ran: list[str] = []

    async def uses_powertools(when: str) -> None:
        async with powertools.db.connection() as c:
            await c.execute("SELECT 1")
        ran.append(when)

    @asynccontextmanager
    async def host_lifespan(app: Litestar) -> AsyncIterator[None]:
        await uses_powertools("lifespan enter")
        yield
        await uses_powertools("lifespan exit")

    async def host_start_up_hook() -> None:
        await uses_powertools("on_startup")

    async def host_shut_down_hook() -> None:
        await uses_powertools("on_shutdown")

    # The host's own start-up and shut-down code runs, and may use powertools throughout.
    app = litestar_host(
        powertools,
        lifespan=[host_lifespan],
        on_startup=[host_start_up_hook],
        on_shutdown=[host_shut_down_hook],
    )
    assert powertools.db.pool.closed and await pool_connections(conn) == 0
    async with lifespan_of(app):
        assert ran == ["lifespan enter", "on_startup"]
        assert not powertools.db.pool.closed
        assert await pool_connections(conn) >= 1  # before any request: opened by the lifespan
        async with client(app) as ops:
            assert (await ops.get(f"{MOUNT}/")).status_code == 200
    assert ran == ["lifespan enter", "on_startup", "lifespan exit", "on_shutdown"]
    assert powertools.db.pool.closed

    async def backends_gone() -> bool:
        return await pool_connections(conn) == 0

    # A closed connection's backend exits on the server's own time.
    await eventually(backends_gone, within=10, what="the pool's backends exit")


def test_a_bad_mount_path_is_refused(powertools: Powertools) -> None:
    for bad in ("ops/jobs", "/ops/jobs/", "/ops//jobs"):
        with pytest.raises(ConfigError, match="is not a mount path"):
            PowertoolsPlugin(powertools, path=bad)


async def test_another_mount_path(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    app = Litestar(plugins=[PowertoolsPlugin(powertools, path="/admin/jobs")])
    async with client(app) as ops:
        seen = await crawl(ops, "/admin/jobs/", "/admin/jobs")
        assert seen["/admin/jobs/cron"] == 200
        assert (await ops.get(f"{MOUNT}/")).status_code == 404


def test_without_litestar_the_error_names_the_extra() -> None:
    # A host without Litestar installed: importing the glue says which extra to install.
    code = "import sys; sys.modules['litestar'] = None\nimport oban_powertools.contrib.litestar\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("oban_powertools.errors.ConfigError: litestar: is not installed"), last
    assert "pip install 'oban-powertools[litestar]'" in last
