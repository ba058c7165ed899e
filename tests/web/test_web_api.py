"""The JSON API: the same pipeline, seam and audit as the pages."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from oban_powertools import Powertools
from tests.web.helpers import seed_cron

PREVIEW = "/ops/jobs/api/actions/preview"
CONFIRM = "/ops/jobs/api/actions/confirm"


async def count(powertools: Powertools, sql: str) -> int:
    async with powertools.db.connection() as conn:
        row = await (await conn.execute(sql)).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return int(next(iter(row.values())))


async def seeded(powertools: Powertools) -> None:
    await powertools.start()
    async with powertools.db.transaction() as conn:
        await seed_cron(conn)


async def test_pause_through_the_json_api(
    powertools: Powertools, as_user: Callable[..., httpx.AsyncClient]
) -> None:
    await seeded(powertools)
    ops = as_user("ops-demo")
    response = await ops.post(
        PREVIEW, json={"action": "pause_cron_entry", "targets": ["nightly_sync"]}
    )
    assert response.status_code == 201, response.text
    preview = response.json()
    assert preview["resource"] == "cron_entry:nightly_sync" and preview["status"] == "ready"
    assert preview["effect"].startswith("Future claims stop until resumed")

    response = await ops.post(CONFIRM, json={"token": preview["token"], "reason": "API pause"})
    assert response.status_code == 200, response.text
    event_id = response.json()["audit_event_id"]
    async with powertools.db.connection() as conn:
        row = await (
            await conn.execute("SELECT * FROM powertools_audit_events WHERE id = %s", (event_id,))
        ).fetchone()
    assert row is not None and row["surface"] == "api" and row["reason"] == "API pause"

    again = await ops.post(CONFIRM, json={"token": preview["token"], "reason": "API pause"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "preview_consumed"
    assert again.json()["error"]["audit_event_id"] == event_id
    shown = await ops.get(f"/ops/jobs/api/previews/{preview['token']}")
    assert shown.json()["status"] == "consumed"
    # Another operator cannot read it: tokens are secrets.
    other = await as_user("ops-other").get(f"/ops/jobs/api/previews/{preview['token']}")
    assert other.status_code == 404
    assert await count(powertools, "SELECT count(*) FROM powertools_audit_events") == 1


async def test_json_api_refuses_without_writing(
    powertools: Powertools, as_user: Callable[..., httpx.AsyncClient]
) -> None:
    await seeded(powertools)
    body = {"action": "pause_cron_entry", "targets": ["nightly_sync"]}
    anonymous = await as_user(None).post(PREVIEW, json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_signed_in"
    viewer = await as_user("ops-viewer").post(PREVIEW, json=body)
    assert viewer.status_code == 403 and viewer.json()["error"]["code"] == "unauthorized"
    ops = as_user("ops-demo")
    form = await ops.post(PREVIEW, data={"action": "pause_cron_entry", "targets": "nightly_sync"})
    assert form.status_code == 415  # a cross-site form can only send form encodings
    cross = await ops.post(PREVIEW, json=body, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "cross_origin"
    broken = await ops.post(
        PREVIEW, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
    for bad in (
        {"action": 5, "targets": ["x"]},
        {"action": "pause_cron_entry", "targets": {"a": 1}},
        {"action": "pause_cron_entry", "targets": ["nightly_sync"], "params": []},
        {"action": "drop_everything", "targets": ["nightly_sync"]},
        {"action": "pause_cron_entry", "targets": ["no_such_entry"]},
        {"action": "pause_cron_entry", "targets": ["nightly_sync"], "params": {"x": 1}},
    ):
        response = await ops.post(PREVIEW, json=bad)
        assert 400 <= response.status_code < 500, (bad, response.text)
        assert "error" in response.json()
    confirm = await ops.post(CONFIRM, json={"token": "nope", "reason": "x" * 10})
    assert confirm.status_code == 404
    async with powertools.db.connection() as conn:
        entry = await (await conn.execute("SELECT paused FROM powertools_cron_entries")).fetchone()
    assert entry == {"paused": False}
    assert await count(powertools, "SELECT count(*) FROM powertools_previews") == 0
    # Only the viewer's denial was recorded, as a security event.
    assert (
        await count(
            powertools, "SELECT count(*) FROM powertools_audit_events WHERE outcome <> 'denied'"
        )
        == 0
    )


async def test_json_api_reason_rules(
    powertools: Powertools, as_user: Callable[..., httpx.AsyncClient]
) -> None:
    await seeded(powertools)
    ops = as_user("ops-demo")
    preview = (
        await ops.post(PREVIEW, json={"action": "pause_cron_entry", "targets": "nightly_sync"})
    ).json()
    missing = await ops.post(CONFIRM, json={"token": preview["token"]})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "reason_required"
    async with powertools.db.connection() as conn:
        row = await (await conn.execute("SELECT status FROM powertools_previews")).fetchone()
    assert row == {"status": "ready"}
