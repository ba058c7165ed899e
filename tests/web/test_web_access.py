"""Every route, as operator, viewer, authenticated-without-access and anonymous.

Operators get pages with controls, viewers the same pages read-only, users without access a
403 without data, anonymous users a 401 (or the host's login page). Every response carries
the security headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from oban_powertools.web.security import SECURITY_HEADERS
from tests.web.helpers import (
    MOUNT,
    build_powertools,
    client,
    host_app,
    insert_job,
    insert_producer,
    seed_cron,
)

Client = Callable[..., httpx.AsyncClient]

PAGES = [
    "/",
    "/cron",
    "/cron/nightly_sync",
    "/queues",
    "/jobs",
    "/jobs?state=available",
    "/jobs/{job}",
    "/audit",
    "/audit/{event}",
    "/forensics",
    "/forensics?resource_type=cron_entry&resource_id=nightly_sync",
    "/forensics?resource_type=job&resource_id={job}",
    "/forensics?resource_type=queue&resource_id=default",
    "/forensics/bundle.json?resource_type=cron_entry&resource_id=nightly_sync",
]
NAV = ("Overview", "Cron", "Queues", "Jobs", "Audit", "Forensics")
# Strings that only appear when data is rendered.
DATA = ("nightly_sync", "app.NightlySync", "app.SendEmail", "worker-1", "ops-demo", "[redacted]")


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "unsafe-inline" not in response.headers["content-security-policy"]


@pytest.fixture
async def seeded(as_user: Client, conn: psycopg.AsyncConnection[Any]) -> dict[str, int]:
    await seed_cron(conn)
    await insert_producer(conn, queue="default", node="worker-1")
    job = await insert_job(conn, worker="app.SendEmail", args={"to": "a@example.com"})
    # One audited action so /audit/{id} exists.
    await conn.execute(
        "INSERT INTO powertools_audit_events (action, command, resource_type, resource_id, "
        "principal_id, principal_type, principal_label, surface, outcome) VALUES "
        "('cron.paused', 'pause_cron_entry', 'cron_entry', 'nightly_sync', 'ops-demo', 'user', "
        "'Ops Demo', 'cli', 'succeeded')"
    )
    cur = await conn.execute("SELECT max(id) AS id FROM powertools_audit_events")
    row = await cur.fetchone()
    assert row is not None
    return {"job": job, "event": row["id"]}


def paths(seeded: dict[str, int]) -> list[str]:
    return [MOUNT + p.format(**seeded) for p in PAGES]


async def test_operator_sees_every_page_with_controls(
    as_user: Client, seeded: dict[str, int]
) -> None:
    ops = as_user("ops-demo")
    for path in paths(seeded):
        response = await ops.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        if path.endswith(".json") or "bundle" in path:
            continue
        assert "Read-only." not in response.text, path
        for label in NAV:
            assert f">{label}</a>" in response.text, (path, label)
        assert "Audited action" in response.text
        assert acting_as(response.text) == "Ops Demo (ops-demo)"
    cron = await ops.get(f"{MOUNT}/cron")
    assert ">Pause cron entry</button>" in cron.text
    assert ">Run now</button>" in cron.text
    queues = await ops.get(f"{MOUNT}/queues")
    assert ">Pause queue</button>" in queues.text
    jobs = await ops.get(f"{MOUNT}/jobs")
    assert ">Retry selected</button>" in jobs.text


async def test_viewer_sees_pages_read_only(as_user: Client, seeded: dict[str, int]) -> None:
    viewer = as_user("ops-viewer")
    for path in paths(seeded):
        response = await viewer.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
        if "bundle.json" in path:
            continue
        assert acting_as(response.text) == "Ops Viewer (ops-viewer)"
        # No mutation control anywhere, hence no form token either.
        assert "/actions/preview" not in response.text, path
        assert "csrf_token" not in response.text, path
    for path in ("/", "/cron", "/cron/nightly_sync", "/queues", "/jobs", f"/jobs/{seeded['job']}"):
        response = await viewer.get(MOUNT + path)
        assert "Read-only." in response.text, path


@pytest.mark.parametrize("user", ["ops-guest", None])
async def test_denied_users_see_no_data(
    as_user: Client, seeded: dict[str, int], user: str | None
) -> None:
    denied = as_user(user)
    for path in paths(seeded):
        response = await denied.get(path)
        expected = 403 if user else 401
        assert response.status_code == expected, path
        assert_security_headers(response)
        for marker in DATA:
            assert marker not in response.text, (path, marker)
        # Nothing to navigate to, and no hint of what exists.
        assert ">Cron</a>" not in response.text or user is not None


async def test_anonymous_posts_are_refused(as_user: Client, seeded: dict[str, int]) -> None:
    anonymous = as_user(None)
    for path in ("/actions/preview", "/actions/confirm"):
        response = await anonymous.post(MOUNT + path, data={"action": "pause_cron_entry"})
        assert response.status_code == 401
        assert_security_headers(response)
    result = await anonymous.get(f"{MOUNT}/actions/results/{seeded['event']}")
    assert result.status_code == 401


async def test_unauthenticated_redirects_to_host_login(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    powertools = build_powertools(db_url, login_url="/login")
    try:
        async with client(host_app(powertools)) as anonymous:
            response = await anonymous.get(f"{MOUNT}/cron?x=1")
            assert response.status_code == 303
            assert response.headers["location"] == "/login?next=%2Fops%2Fjobs%2Fcron%3Fx%3D1"
            assert_security_headers(response)
            polled = await anonymous.get(
                f"{MOUNT}/", headers={"hx-request": "true", "hx-target": "live"}
            )
            assert polled.status_code == 401
            assert polled.headers["hx-redirect"].startswith("/login?next=")
    finally:
        await powertools.stop()


async def test_result_page_needs_the_actor_or_audit_access(
    as_user: Client, seeded: dict[str, int]
) -> None:
    event = seeded["event"]  # recorded as ops-demo
    assert (await as_user("ops-demo").get(f"{MOUNT}/actions/results/{event}")).status_code == 200
    assert (await as_user("ops-viewer").get(f"{MOUNT}/actions/results/{event}")).status_code == 200
    guest = await as_user("ops-guest").get(f"{MOUNT}/actions/results/{event}")
    assert guest.status_code == 403
    assert "nightly_sync" not in guest.text


async def test_seam_is_called_server_side_for_every_page(
    powertools: Any, as_user: Client, seeded: dict[str, int]
) -> None:
    auth = powertools.config.auth
    ops = as_user("ops-demo")
    permissions = {
        "/": "view_overview",
        "/cron": "view_cron",
        "/queues": "view_queues",
        "/jobs": "view_jobs",
        "/audit": "view_audit",
        "/forensics": "view_forensics",
    }
    for path, permission in permissions.items():
        auth.calls.clear()
        await ops.get(MOUNT + path)
        assert auth.calls[0][:2] == ("ops-demo", permission), path


async def test_errors_and_static_files_carry_headers(as_user: Client) -> None:
    ops = as_user("ops-demo")
    missing = await ops.get(f"{MOUNT}/no/such/page")
    assert missing.status_code == 404
    assert_security_headers(missing)
    wrong_method = await ops.delete(f"{MOUNT}/cron")
    assert wrong_method.status_code == 405
    assert_security_headers(wrong_method)
    for asset, kind in (
        ("htmx.min.js", "javascript"),
        ("powertools.js", "javascript"),
        ("powertools.css", "text/css"),
    ):
        response = await ops.get(f"{MOUNT}/static/{asset}")
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
        assert_security_headers(response)
    htmx = await ops.get(f"{MOUNT}/static/htmx.min.js")
    assert htmx.text.startswith("/*! htmx 2.")


async def test_pages_have_no_inline_script_or_style(
    as_user: Client, seeded: dict[str, int]
) -> None:
    ops = as_user("ops-demo")
    for path in paths(seeded):
        if "bundle.json" in path:
            continue
        text = (await ops.get(path)).text
        assert "<script>" not in text and "<script type" not in text, path
        assert " style=" not in text and "<style" not in text, path
        assert " on" + "click=" not in text, path
        assert "https://" not in text, path  # no CDN, no external fonts


async def test_missing_subjects_are_404_pages(as_user: Client, seeded: dict[str, int]) -> None:
    ops = as_user("ops-demo")
    for path in ("/cron/nope", "/jobs/999999", "/jobs/abc", "/audit/999999"):
        response = await ops.get(MOUNT + path)
        assert response.status_code == 404, path
        assert "No such" in response.text


async def test_live_fragment_for_polling(as_user: Client, seeded: dict[str, int]) -> None:
    ops = as_user("ops-demo")
    for path in ("/", "/cron", "/queues", "/jobs", "/audit", "/cron/nightly_sync"):
        response = await ops.get(MOUNT + path, headers={"hx-request": "true", "hx-target": "live"})
        assert response.status_code == 200, path
        assert response.text.lstrip().startswith('<div id="live"'), path
        assert "<html" not in response.text
        assert 'hx-trigger="every 5s"' in response.text


async def test_works_under_another_mount_path(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    await seed_cron(conn)
    powertools = build_powertools(db_url)
    try:
        app = Starlette(routes=[Mount("/admin/background", app=powertools.asgi_app())])
        async with client(app, "ops-demo") as ops:
            page = await ops.get("/admin/background/cron")
            assert page.status_code == 200
            assert 'href="/admin/background/cron/nightly_sync"' in page.text
            assert 'action="/admin/background/actions/preview"' in page.text
            assert "/admin/background/static/powertools.css" in page.text
            assert "/ops/jobs" not in page.text
    finally:
        await powertools.stop()


def acting_as(html: str) -> str:
    """The header's principal, as the operator reads it: label and stable id."""
    match = re.search(r'<span class="actor">Acting as <strong>(.*?)</strong></span>', html, re.S)
    assert match, "no acting principal in the header"
    return re.sub(r"<[^>]+>", "", match[1]).strip()
