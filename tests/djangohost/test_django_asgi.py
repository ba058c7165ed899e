"""The example Django host through a real ASGI client: Django's sessions and permissions
decide who sees /ops/jobs, links stay below the mount, and the lifespan runs the pool."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from oban_powertools.web.security import Csrf

ORIGIN = "http://testserver"


def client(site: dict[str, Any]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site["application"]),
        base_url=ORIGIN,
        headers={"origin": ORIGIN},
    )


@asynccontextmanager
async def login(site: dict[str, Any], username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in through Django's own login view, as a browser would be."""
    async with client(site) as http:
        yield await _sign_in(http, username)


async def _sign_in(http: httpx.AsyncClient, username: str) -> httpx.AsyncClient:
    form = await http.get("/accounts/login/?next=/ops/jobs/")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token
    done = await http.post(
        "/accounts/login/",
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": username,
            "password": "demo",
            "next": "/ops/jobs/",
        },
    )
    assert done.status_code == 302 and done.headers["location"] == "/ops/jobs/", done.text
    return http


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_anonymous_visitors_are_sent_to_djangos_login(django_site: dict[str, Any]) -> None:
    async with client(django_site) as http:
        page = await http.get("/ops/jobs/cron")
        assert page.status_code == 303
        assert page.headers["location"] == "/accounts/login/?next=%2Fops%2Fjobs%2Fcron"
        # A session key Django does not know is nobody, too.
        http.cookies.set("sessionid", "not-a-session-key")
        assert (await http.get("/ops/jobs/")).status_code == 303


async def test_a_permitted_staff_user_sees_the_console_with_links_below_the_mount(
    django_site: dict[str, Any],
) -> None:
    async with login(django_site, "ops-demo") as http:
        for path in ("/ops/jobs/", "/ops/jobs/cron", "/ops/jobs/cron/nightly_sync"):
            page = await http.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            links = re.findall(r'(?:href|action|src)="(/[^"]*)"', page.text)
            assert links and all(link.startswith("/ops/jobs/") for link in links), links
        assert "Ops Demo" in page.text and ">Pause cron entry</button>" in page.text
        # Everything else is Django's: its pages, its 404s.
        home = await http.get("/")
        assert home.status_code == 200 and "Signed in as Ops Demo" in home.text
        assert (await http.get("/ops/jobsxyz")).status_code == 404


@pytest.mark.parametrize(
    ("username", "path", "status"),
    [
        ("ops-guest", "/ops/jobs/", 403),  # staff, none of the permissions
        ("ops-viewer", "/ops/jobs/cron", 200),  # the view permissions only
    ],
)
async def test_django_permissions_decide(
    django_site: dict[str, Any], username: str, path: str, status: int
) -> None:
    async with login(django_site, username) as http:
        assert (await http.get(path)).status_code == status


async def test_a_viewer_cannot_preview_a_pause(django_site: dict[str, Any]) -> None:
    async with login(django_site, "ops-viewer") as http:
        page = await http.get("/ops/jobs/cron/nightly_sync")
        assert page.status_code == 200 and ">Pause cron entry</button>" not in page.text
        # The page offers no form; a valid token for this user gets no further.
        secret = django_site["powertools"].config.csrf_secret
        token = Csrf(secret).token("ops-viewer")
        refused = await http.post(
            "/ops/jobs/actions/preview",
            data={
                "csrf_token": token,
                "action": "pause_cron_entry",
                "target": "nightly_sync",
                "return_to": "/cron/nightly_sync",
            },
        )
        assert refused.status_code == 403, refused.text


async def test_a_confirmed_pause_is_audited_as_the_django_user(
    django_site: dict[str, Any],
) -> None:
    async with login(django_site, "ops-demo") as http:
        page = await http.get("/ops/jobs/cron/nightly_sync")
        preview = await http.post(
            "/ops/jobs/actions/preview",
            data={
                "csrf_token": csrf_of(page.text),
                "action": "pause_cron_entry",
                "target": "nightly_sync",
                "return_to": "/cron/nightly_sync",
            },
        )
        assert preview.status_code == 200 and "Ops Demo" in preview.text
        token = re.search(r'name="token" value="([^"]+)"', preview.text)
        assert token
        confirmed = await http.post(
            "/ops/jobs/actions/confirm",
            data={
                "csrf_token": csrf_of(preview.text),
                "token": token.group(1),
                "reason": "upstream outage",
            },
        )
        assert confirmed.status_code == 303
        assert confirmed.headers["location"].startswith("/ops/jobs/actions/results/")
        result = await http.get(confirmed.headers["location"])
        assert result.status_code == 200
    with psycopg.connect(django_site["url"], row_factory=dict_row) as conn:
        event = conn.execute(
            "SELECT action, principal_id, principal_type, principal_label, surface, reason "
            "FROM powertools_audit_events WHERE outcome = 'succeeded'"
        ).fetchone()
        paused = conn.execute(
            "SELECT paused FROM powertools_cron_entries WHERE name = 'nightly_sync'"
        ).fetchone()
    assert event == {
        "action": "cron.paused",
        "principal_id": "ops-demo",
        "principal_type": "user",
        "principal_label": "Ops Demo",
        "surface": "web",
        "reason": "upstream outage",
    }
    assert paused == {"paused": True}


async def test_the_lifespan_opens_and_closes_the_pool_without_reaching_django(
    django_site: dict[str, Any],
) -> None:
    """As uvicorn drives it: one lifespan call, startup, then shutdown when stopping.
    Django's handler raises on lifespan events, so none may reach it."""
    powertools = django_site["powertools"]
    await powertools.stop()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.create_task(django_site["application"](scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert await asyncio.wait_for(outbox.get(), 10) == {"type": "lifespan.startup.complete"}
    assert not powertools.db.pool.closed
    async with powertools.db.connection() as conn:
        await conn.execute("SELECT 1")
    await inbox.put({"type": "lifespan.shutdown"})
    assert await asyncio.wait_for(outbox.get(), 10) == {"type": "lifespan.shutdown.complete"}
    await asyncio.wait_for(running, 10)
    assert powertools.db.pool.closed
