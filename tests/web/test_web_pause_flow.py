"""The first operator session: ops-demo pauses nightly_sync on a native page.

preview → reason → confirm → result → audit → forensics, and a second confirm of the same
preview is refused with a clear message and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from oban_powertools.forensics import LABELS
from tests.web.helpers import MOUNT, USERS, csrf_of, scalar, seed_cron, token_of

Client = Callable[..., httpx.AsyncClient]


async def preview_pause(ops: httpx.AsyncClient, *, htmx: bool = False) -> httpx.Response:
    page = await ops.get(f"{MOUNT}/cron/nightly_sync")
    assert page.status_code == 200
    headers = {"hx-request": "true", "hx-target": "action-panel"} if htmx else {}
    return await ops.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "pause_cron_entry",
            "target": "nightly_sync",
            "return_to": "/cron/nightly_sync",
        },
        headers=headers,
    )


async def test_pause_nightly_sync_end_to_end(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")

    detail = await ops.get(f"{MOUNT}/cron/nightly_sync")
    assert ">Pause cron entry</button>" in detail.text
    assert ">Run now</button>" in detail.text
    assert "Resume cron entry</button>" not in detail.text

    preview = await preview_pause(ops)
    assert preview.status_code == 200
    panel = preview.text
    assert "<html" in panel  # without JavaScript: a full page around the panel
    assert "Preview: Pause cron entry" in panel
    assert "cron_entry:nightly_sync" in panel
    assert "Future claims stop until resumed" in panel
    assert "Ops Demo" in panel
    assert "One immutable audit event will be written" in panel
    assert ">ready<" in panel
    assert '<label for="reason">Reason</label>' in panel
    assert ">Confirm</button>" in panel
    token = token_of(panel)
    csrf = csrf_of(panel)

    # A destructive action needs a reason: refused, the preview stays ready, nothing changes.
    missing = await ops.post(
        f"{MOUNT}/actions/confirm", data={"csrf_token": csrf, "token": token, "reason": ""}
    )
    assert missing.status_code == 400
    assert "A reason is required to pause cron entry" in missing.text
    assert "Nothing was changed" in missing.text
    assert token_of(missing.text) == token
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False

    confirmed = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token, "reason": "upstream outage"},
    )
    assert confirmed.status_code == 303
    location = confirmed.headers["location"]
    assert location.startswith(f"{MOUNT}/actions/results/")

    row = await (
        await conn.execute(
            "SELECT paused, paused_by_id, paused_by_label, paused_reason "
            "FROM powertools_cron_entries WHERE name = 'nightly_sync'"
        )
    ).fetchone()
    assert row == {
        "paused": True,
        "paused_by_id": "ops-demo",
        "paused_by_label": "Ops Demo",
        "paused_reason": "upstream outage",
    }
    events = await (
        await conn.execute(
            "SELECT id, action, principal_id, reason, surface, preview_token "
            "FROM powertools_audit_events WHERE outcome = 'succeeded'"
        )
    ).fetchall()
    assert len(events) == 1
    event = events[0]
    assert (event["action"], event["principal_id"], event["reason"], event["surface"]) == (
        "cron.paused",
        "ops-demo",
        "upstream outage",
        "web",
    )
    assert event["preview_token"] == token
    assert location.endswith(f"/actions/results/{event['id']}")

    result = await ops.get(location)
    assert result.status_code == 200
    assert "cron.paused" in result.text
    assert "upstream outage" in result.text
    assert f"Audit event #{event['id']}" in result.text
    assert f'href="{MOUNT}/audit?resource_type=cron_entry&amp;resource_id=nightly_sync"' in (
        result.text
    )

    audit = await ops.get(
        f"{MOUNT}/audit", params={"resource_type": "cron_entry", "resource_id": "nightly_sync"}
    )
    assert audit.status_code == 200
    assert "cron.paused" in audit.text
    assert "Ops Demo" in audit.text
    assert "upstream outage" in audit.text

    forensics = await ops.get(
        f"{MOUNT}/forensics",
        params={"resource_type": "cron_entry", "resource_id": "nightly_sync"},
    )
    assert forensics.status_code == 200
    page = forensics.text
    assert "Paused by Ops Demo" in page
    assert "&#39;upstream outage&#39;" in page
    assert "The scheduler claims no slot until resumed." in page
    # No scheduler ran in this test: the bundle says its certainty is bounded.
    assert ">history unavailable<" in page
    assert sum(f">{label}<" in page for label in LABELS) == 1
    assert ">Powertools-native<" in page
    assert f'href="{MOUNT}/cron/nightly_sync">Resume cron entry</a>' in page
    assert ">host-owned follow-up<" in page
    assert "Check the upstream system / runbook" in page
    assert "Oban Web bridge" not in page  # not configured: no bridge path anywhere
    assert "cron.paused" in page  # the chronology holds the audit event

    overview = await ops.get(f"{MOUNT}/")
    assert "Cron entry nightly_sync is paused" in overview.text

    # The same preview again: refused, clearly, and nothing is written twice.
    again = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token, "reason": "upstream outage"},
    )
    assert again.status_code == 409
    assert "This preview was already confirmed" in again.text
    assert "nothing was changed again" in again.text
    assert f"audit event {event['id']}" in again.text
    assert (
        await scalar(
            conn, "SELECT count(*) FROM powertools_audit_events WHERE action = 'cron.paused'"
        )
        == 1
    )


async def test_pause_with_htmx_swaps_the_panel_and_redirects(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    preview = await preview_pause(ops, htmx=True)
    assert preview.status_code == 200
    assert "<html" not in preview.text  # a fragment for #action-panel
    assert "Preview: Pause cron entry" in preview.text
    confirmed = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": token_of(preview.text),
            "reason": "upstream outage",
        },
        headers={"hx-request": "true", "hx-target": "action-panel"},
    )
    assert confirmed.status_code == 200
    assert confirmed.headers["hx-redirect"].startswith(f"{MOUNT}/actions/results/")
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is True

    # Errors come back as fragments with a 4xx status (htmx is configured to show them).
    again = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": token_of(preview.text),
            "reason": "again",
        },
        headers={"hx-request": "true", "hx-target": "action-panel"},
    )
    assert again.status_code == 409
    assert "<html" not in again.text
    assert "already confirmed" in again.text


async def test_resume_and_run_now(as_user: Client, conn: psycopg.AsyncConnection[Any]) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    preview = await preview_pause(ops)
    await ops.post(
        f"{MOUNT}/actions/confirm",
        data={
            "csrf_token": csrf_of(preview.text),
            "token": token_of(preview.text),
            "reason": "x" * 5,
        },
    )
    detail = await ops.get(f"{MOUNT}/cron/nightly_sync")
    assert ">Resume cron entry</button>" in detail.text
    assert ">Pause cron entry</button>" not in detail.text
    csrf = csrf_of(detail.text)

    resume = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "resume_cron_entry", "target": "nightly_sync"},
    )
    assert resume.status_code == 200
    assert "catch-up policy &#39;latest&#39;" in resume.text
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(resume.text), "reason": ""},
    )
    assert done.status_code == 303  # resuming needs no reason
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False

    run = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "run_cron_entry", "target": "nightly_sync"},
    )
    assert "Enqueues one app.NightlySync job" in run.text
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(run.text), "reason": "backfill"},
    )
    assert done.status_code == 303
    assert (
        await scalar(conn, "SELECT count(*) FROM oban_jobs WHERE worker = 'app.NightlySync'") == 1
    )
    detail = await ops.get(f"{MOUNT}/cron/nightly_sync")
    assert "manual" in detail.text  # the run-now slot is listed


async def test_action_errors_render_clearly(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    page = await ops.get(f"{MOUNT}/cron/nightly_sync")
    csrf = csrf_of(page.text)
    missing = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "pause_cron_entry", "target": "no_such_entry"},
    )
    assert missing.status_code == 404
    assert "No cron entry no_such_entry" in missing.text
    unknown = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "drop_tables", "target": "x"},
    )
    assert unknown.status_code == 404
    assert "Unknown action" in unknown.text
    resume = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "resume_cron_entry", "target": "nightly_sync"},
    )
    assert resume.status_code == 409
    assert "The cron entry is not paused" in resume.text
    bogus = await ops.post(
        f"{MOUNT}/actions/confirm", data={"csrf_token": csrf, "token": "nope", "reason": "x"}
    )
    assert bogus.status_code == 404
    assert "No such preview" in bogus.text


async def test_drifted_and_expired_previews_change_nothing(
    as_user: Client, conn: psycopg.AsyncConnection[Any], powertools: Any
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    preview = await preview_pause(ops)
    csrf, token = csrf_of(preview.text), token_of(preview.text)

    # Someone pauses and resumes the entry from the CLI meanwhile: the version moved on.
    other = USERS["ops-other"]
    await powertools.operator.pause_cron_entry(other, "nightly_sync", reason="cli pause")
    await powertools.operator.resume_cron_entry(other, "nightly_sync")
    drifted = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token, "reason": "upstream outage"},
    )
    assert drifted.status_code == 409
    assert "The target changed since the preview (nightly_sync); nothing was changed" in (
        drifted.text
    )
    assert 'name="token"' not in drifted.text  # no confirm form for a dead preview
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False

    preview = await preview_pause(ops)
    token = token_of(preview.text)
    await conn.execute(
        "UPDATE powertools_previews SET expires_at = now() - interval '1 minute' "
        "WHERE token = %(t)s",
        {"t": token},
    )
    expired = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token, "reason": "upstream outage"},
    )
    assert expired.status_code == 409
    assert "This preview has expired; nothing was changed" in expired.text
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False
    changes = await scalar(
        conn,
        "SELECT count(*) FROM powertools_audit_events WHERE principal_id = 'ops-demo'",
    )
    assert changes == 0
