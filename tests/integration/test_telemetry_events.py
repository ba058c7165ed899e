"""Each documented telemetry event fires, with its documented fields, when the real thing
happens against PostgreSQL (docs/telemetry.md; the docs test checks the page)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oban_powertools import Powertools
from oban_powertools.actions import errors
from oban_powertools.actions.pipeline import CONFIRMED, DENIED, FAILED, PREVIEWED
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.runtime.cron_telemetry import (
    CAUGHT_UP,
    EVALUATED,
    SLOT_CLAIMED,
    SLOT_SKIPPED,
)
from oban_powertools.runtime.scheduler import CronScheduler
from tests.support.seams import OPERATOR, OTHER_OPERATOR, VIEWER, make_powertools
from tests.support.telemetry import recording

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Leader:
    is_leader = True


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def define(pt: Powertools, name: str, **kw: Any) -> None:
    kw.setdefault("queue", "cron")
    spec = CronEntrySpec(name=name, worker="app.workers.Tick", expression="* * * * *", **kw)
    async with pt.db.transaction() as conn:
        await upsert_entry(conn, spec)


async def test_action_events_follow_the_pipeline(pt: Powertools) -> None:
    await define(pt, "nightly_sync")
    with recording(PREVIEWED, CONFIRMED, DENIED, FAILED) as seen:
        preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
        result = await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
        with pytest.raises(errors.Unauthorized):
            await pt.pipeline.preview(VIEWER, "pause_cron_entry", "nightly_sync", surface="web")
        # Another operator's pause of the same entry, previewed before, has drifted.
        stale = await pt.pipeline.preview(OTHER_OPERATOR, "resume_cron_entry", "nightly_sync")
        await pt.operator.resume_cron_entry(OPERATOR, "nightly_sync", reason="back again")
        with pytest.raises(errors.PreviewDrifted):
            await pt.pipeline.execute(OTHER_OPERATOR, stale.token, "their resume")

    previewed = seen.of(PREVIEWED)
    assert [(p["action"], p["actor_id"]) for p in previewed] == [
        ("pause_cron_entry", "ops-demo"),
        ("resume_cron_entry", "ops-other"),
        ("resume_cron_entry", "ops-demo"),  # the operator API goes through the pipeline
    ]
    first = previewed[0]
    assert first["resource"] == "cron_entry:nightly_sync" and first["surface"] == "api"
    assert first["targets"] == 1 and first["duration"] > 0
    confirmed = seen.of(CONFIRMED)
    assert [c["action"] for c in confirmed] == ["pause_cron_entry", "resume_cron_entry"]
    assert confirmed[0]["audit_event_id"] == result.audit_event_id
    assert confirmed[0]["duration"] > 0 and confirmed[0]["targets"] == 1
    (denied,) = seen.of(DENIED)
    assert denied == {
        "targets": 1,
        "action": "pause_cron_entry",
        "resource": "cron_entry:nightly_sync",
        "surface": "web",
        "actor_id": "ops-viewer",
        "stage": "preview",
    }
    (failed,) = seen.of(FAILED)
    assert (failed["action"], failed["outcome"], failed["actor_id"]) == (
        "resume_cron_entry",
        "drifted",
        "ops-other",
    )


async def test_an_expired_preview_reports_failed(pt: Powertools) -> None:
    await define(pt, "nightly_sync")
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    async with pt.db.connection() as conn:
        await conn.execute("UPDATE powertools_previews SET expires_at = now() - interval '1 s'")
    with recording(FAILED, CONFIRMED) as seen, pytest.raises(errors.PreviewExpired):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    assert [f["outcome"] for f in seen.of(FAILED)] == ["expired"]
    assert seen.of(CONFIRMED) == []


async def test_cron_events_for_claimed_skipped_and_caught_up_slots(pt: Powertools) -> None:
    await define(pt, "every_minute", overlap_policy="skip", catch_up_policy="all", max_catch_up=3)
    scheduler = CronScheduler(pt.db, leader=Leader(), node="node-t")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with recording(SLOT_CLAIMED, SLOT_SKIPPED, CAUGHT_UP, EVALUATED) as seen:
        await scheduler.evaluate(now=now)  # a new entry starts at the current minute
        # Its job is still available: the next minute overlaps and is skipped.
        await scheduler.evaluate(now=now + MINUTE, live_from=now + MINUTE)
    (claimed,) = seen.of(SLOT_CLAIMED)
    assert claimed["entry"] == "every_minute" and claimed["slot_at"] == now.isoformat()
    assert (claimed["kind"], claimed["outcome"], claimed["node"]) == (
        "scheduled",
        "enqueued",
        "node-t",
    )
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM oban_jobs WHERE meta->>'cron_name' = 'every_minute'"
        )
        (job,) = await cur.fetchall()
    assert claimed["job_id"] == job["id"]
    # From the slot's minute to the decision (the test started within this minute).
    assert 0 <= claimed["lag_seconds"] < 120
    (skipped,) = seen.of(SLOT_SKIPPED)
    assert (skipped["outcome"], skipped["slot_at"], skipped["job_id"]) == (
        "skipped_overlap",
        (now + MINUTE).isoformat(),
        None,
    )
    assert skipped["lag_seconds"] < 0  # decided ahead of its minute, as evaluate(now=) may
    evaluated = seen.of(EVALUATED)
    assert [(e["enqueued"], e["skipped"], e["examined"]) for e in evaluated] == [
        (1, 0, 1),
        (0, 1, 1),
    ]
    assert evaluated[0]["minute"] == now.isoformat() and evaluated[0]["duration"] > 0
    assert seen.of(CAUGHT_UP) == []


async def test_cron_catch_up_reports_the_missed_minutes(pt: Powertools) -> None:
    await define(pt, "hourly_report", catch_up_policy="all", max_catch_up=3)
    scheduler = CronScheduler(pt.db, leader=Leader(), node="node-t")
    await scheduler.evaluate(now=T0)
    with recording(SLOT_CLAIMED, SLOT_SKIPPED, CAUGHT_UP) as seen:
        # Down for ten minutes: the three latest missed minutes are enqueued, one older
        # minute records that the rest were dropped.
        await scheduler.evaluate(now=T0 + 10 * MINUTE)
    kinds = [(c["kind"], c["slot_at"]) for c in seen.of(SLOT_CLAIMED)]
    assert kinds == [
        ("catch_up", (T0 + 7 * MINUTE).isoformat()),
        ("catch_up", (T0 + 8 * MINUTE).isoformat()),
        ("catch_up", (T0 + 9 * MINUTE).isoformat()),
        ("scheduled", (T0 + 10 * MINUTE).isoformat()),
    ]
    (dropped,) = seen.of(SLOT_SKIPPED)
    assert (dropped["outcome"], dropped["slot_at"]) == (
        "skipped_catch_up",
        (T0 + 6 * MINUTE).isoformat(),
    )
    (caught_up,) = seen.of(CAUGHT_UP)
    assert caught_up == {
        "enqueued": 3,
        "skipped": 1,
        "entry": "hourly_report",
        "first_slot_at": (T0 + 6 * MINUTE).isoformat(),
        "last_slot_at": (T0 + 9 * MINUTE).isoformat(),
        "node": "node-t",
    }
