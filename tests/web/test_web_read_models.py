"""Read models and forensics called directly, without HTTP: what the overview diagnoses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.forensics import build_bundle
from oban_powertools.read_models import overview as overview_model
from oban_powertools.read_models.common import BRIDGE, HOST, NATIVE
from tests.web.helpers import (
    TRACEBACK,
    RedactingDisplay,
    insert_job,
    insert_producer,
    seed_cron,
)

DISPLAY = Display(RedactingDisplay())


async def test_overview_diagnoses_and_names_next_venues(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    await conn.execute(
        "UPDATE powertools_cron_entries SET paused = true, paused_at = now() - interval '3 min', "
        "paused_by_id = 'ops-demo', paused_by_label = 'Ops Demo', paused_reason = 'upstream outage'"
    )
    live = await insert_producer(conn, queue="default", node="worker-1")
    await insert_producer(conn, queue="mailers", node="worker-1", paused=True)
    orphan = await insert_job(
        conn,
        state="executing",
        attempt=1,
        attempted_by=["gone-node", "00000000-0000-0000-0000-000000000001"],
        attempted_ago=timedelta(minutes=2),
    )
    slow = await insert_job(
        conn,
        state="executing",
        attempt=1,
        attempted_by=["worker-1", live],
        attempted_ago=timedelta(hours=1),
    )
    healthy = await insert_job(
        conn,
        state="executing",
        attempt=1,
        attempted_by=["worker-1", live],
        attempted_ago=timedelta(seconds=30),
    )
    await insert_job(
        conn,
        state="retryable",
        worker="app.SendEmail",
        attempt=1,
        errors=[{"attempt": 1, "at": "2025-01-01T00:00:00Z", "error": "x\nSMTPError: 550 mailbox"}],
    )
    await insert_job(
        conn,
        state="discarded",
        worker="app.SendEmail",
        attempt=20,
        errors=[{"attempt": 20, "at": "2025-01-01T00:00:00Z", "error": TRACEBACK}],
    )

    await powertools.start()
    data = await overview_model.overview(powertools.db, DISPLAY, bridge=True)
    by_kind: dict[str, list[overview_model.Attention]] = {}
    for item in data.attention:
        by_kind.setdefault(item.kind, []).append(item)

    (paused,) = by_kind["cron_paused"]
    assert paused.why == (
        "Paused by Ops Demo (ops-demo) 3 minutes ago: 'upstream outage'. "
        "The scheduler claims no slot until resumed."
    )
    assert [(p.label, p.ownership, p.href) for p in paused.next][0] == (
        "Resume cron entry",
        NATIVE,
        "/cron/nightly_sync",
    )
    assert {p.ownership for p in paused.next} == {NATIVE, HOST, BRIDGE}

    (queue,) = by_kind["queue_paused"]
    assert "without a stored decision" in queue.why

    stuck = {int(i.title.split()[1]): i for i in by_kind["stuck_job"]}
    assert set(stuck) == {orphan, slow}
    assert healthy not in stuck
    assert stuck[orphan].severity == "critical"
    assert "no live producer" in stuck[orphan].why
    assert "longer than 15 minutes" in stuck[slow].why

    (failing,) = by_kind["failing_worker"]
    assert failing.title == "Worker app.SendEmail is failing"
    assert "1 retryable and 1 discarded" in failing.why
    assert "hunter2" not in failing.why and "nested-secret" not in failing.why
    assert data.attention[0].severity == "critical"  # most urgent first
    assert data.counts["executing"].value == 3
    assert data.counts["discarded"].kind == "exact"

    without_bridge = await overview_model.overview(powertools.db, DISPLAY, bridge=False)
    assert all(p.ownership != BRIDGE for i in without_bridge.attention for p in i.next)


async def test_forensics_for_an_orphaned_job(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await insert_job(
        conn,
        state="executing",
        attempt=2,
        errors=[{"attempt": 1, "at": "2025-01-01T00:00:00Z", "error": "x\nTimeoutError: slow"}],
        attempted_by=["gone-node", "00000000-0000-0000-0000-000000000002"],
        attempted_ago=timedelta(minutes=40),
    )
    await powertools.start()
    bundle = await build_bundle(powertools.db, DISPLAY.on("forensics"), "job", str(job))
    assert bundle.state == "orphaned"
    assert bundle.diagnosis == (
        "Orphaned: executing on node gone-node whose producer "
        "00000000-0000-0000-0000-000000000002 is gone (no oban_producers row); the lifeline "
        "will rescue it at its next pass. It ran for 40 minutes there and will not finish."
    )
    assert bundle.completeness.label == "complete"
    titles = [i.title for i in bundle.chronology]
    assert "attempt 2 started" in titles and "attempt 1 failed" in titles
    assert {p.ownership for p in bundle.next_paths} == {NATIVE, HOST}

    missing = await build_bundle(powertools.db, DISPLAY, "job", "987654")
    assert missing.completeness.label == "unknown"
    assert not missing.exists


async def test_cron_forensics_reads_scheduler_coverage(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn, expression="*/10 * * * *")
    await conn.execute("UPDATE powertools_cron_entries SET created_at = now() - interval '2 hours'")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=2)
    await conn.execute(
        "INSERT INTO powertools_scheduler_coverage (node, first_minute, last_minute) "
        "VALUES ('leader-1', %(a)s, %(b)s)",
        {"a": start - timedelta(minutes=5), "b": now},
    )
    await powertools.start()
    bundle = await build_bundle(powertools.db, DISPLAY, "cron_entry", "nightly_sync", now=now)
    assert bundle.completeness.label == "complete"
    # Every due minute of the window was evaluated without a slot: said so, one by one.
    unslotted = [i for i in bundle.chronology if i.title == "due minute, no slot"]
    assert len(unslotted) == 12
    assert unslotted[0].detail == "Evaluated by the scheduler without a slot."

    await conn.execute("DELETE FROM powertools_scheduler_coverage")
    await conn.execute(
        "INSERT INTO powertools_scheduler_coverage (node, first_minute, last_minute) VALUES "
        "('leader-1', %(a)s, %(b)s), ('leader-2', %(c)s, %(d)s)",
        {
            "a": start,
            "b": start + timedelta(minutes=30),
            "c": start + timedelta(minutes=61),
            "d": now,
        },
    )
    bundle = await build_bundle(powertools.db, DISPLAY, "cron_entry", "nightly_sync", now=now)
    assert bundle.completeness.label == "partial evidence"
    gaps = [i for i in bundle.chronology if i.title == "coverage gap"]
    assert len(gaps) == 1 and "(30 minute(s))" in gaps[0].detail
    assert any(i.title == "due minute, not evaluated" for i in bundle.chronology)
