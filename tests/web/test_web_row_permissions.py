"""List pages show only the rows the host lets the viewer view one by one.

A host may grant a page family (``view_jobs`` on ``Resource("job")``) and still refuse
single resources (``Resource("job", "42")``). The row's own page refuses it, so the list
must not show it either; it says how many rows it left out instead.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from oban_powertools import Resource
from tests.web.helpers import (
    MOUNT,
    HeaderAuth,
    build_powertools,
    client,
    host_app,
    insert_job,
    insert_producer,
    seed_cron,
)


class TeamAuth(HeaderAuth):
    """Viewers see the family pages, but only resources whose id is in ``allowed``."""

    def __init__(self, allowed: set[str], *, batch: bool = False) -> None:
        super().__init__()
        self.allowed = allowed
        self.batches: list[tuple[str, int]] = []
        if batch:
            self.authorize_many = self._authorize_many

    async def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        if not await super().authorize(actor, action, resource):
            return False
        return resource.id is None or resource.id in self.allowed

    async def _authorize_many(self, actor: Any, action: str, resources: list[Resource]) -> Any:
        self.batches.append((action, len(resources)))
        return [
            await HeaderAuth.authorize(self, actor, action, r) and r.id in self.allowed
            for r in resources
        ]


async def seed(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    await seed_cron(conn)
    await seed_cron(conn, name="billing_rollup", worker="app.BillingRollup")
    await insert_producer(conn, queue="default", node="worker-1")
    await insert_producer(conn, queue="billing", node="worker-1")
    mine = await insert_job(conn, worker="app.SendEmail", queue="default")
    theirs = await insert_job(conn, worker="app.ChargeCard", queue="billing")
    for resource_id in ("nightly_sync", "billing_rollup"):
        await conn.execute(
            "INSERT INTO powertools_audit_events (action, command, resource_type, resource_id, "
            "principal_id, principal_type, principal_label, surface, outcome, reason) VALUES "
            "('cron.paused', 'pause_cron_entry', 'cron_entry', %s, 'ops-demo', 'user', "
            "'Ops Demo', 'cli', 'succeeded', %s)",
            (resource_id, f"reason for {resource_id}"),
        )
    await conn.execute(
        "UPDATE powertools_cron_entries SET paused = true, paused_at = now(), "
        "paused_reason = 'hold' WHERE name IN ('nightly_sync', 'billing_rollup')"
    )
    discarded = await insert_job(
        conn, worker="app.ChargeCard", queue="billing", state="discarded", attempt=3
    )
    cur = await conn.execute("SELECT id FROM powertools_audit_events ORDER BY id")
    first, second = [str(r["id"]) for r in await cur.fetchall()]
    return {
        "mine": str(mine),
        "theirs": str(theirs),
        "discarded": str(discarded),
        "event": first,
        "other_event": second,
    }


@pytest.mark.parametrize("batch", [False, True], ids=["authorize", "authorize_many"])
async def test_lists_leave_out_rows_the_viewer_may_not_view(
    db_url: str, conn: psycopg.AsyncConnection[Any], batch: bool
) -> None:
    ids = await seed(conn)
    allowed = {"nightly_sync", "default", ids["mine"], ids["event"]}
    auth = TeamAuth(allowed, batch=batch)
    powertools = build_powertools(db_url, auth=auth)
    try:
        async with client(host_app(powertools), "ops-viewer") as viewer:
            jobs = (await viewer.get(f"{MOUNT}/jobs")).text
            assert "app.SendEmail" in jobs and "app.ChargeCard" not in jobs
            assert "2 jobs left out here" in jobs
            cron = (await viewer.get(f"{MOUNT}/cron")).text
            assert "nightly_sync" in cron and "billing_rollup" not in cron
            assert "1 cron entry left out here" in cron
            queues = (await viewer.get(f"{MOUNT}/queues")).text
            assert "billing" not in queues and "1 queue left out here" in queues
            audit = (await viewer.get(f"{MOUNT}/audit")).text
            assert "reason for nightly_sync" in audit and "reason for billing_rollup" not in audit
            assert "1 audit event left out here" in audit
            overview = (await viewer.get(f"{MOUNT}/")).text
            assert "Cron entry nightly_sync is paused" in overview
            assert "Cron entry billing_rollup is paused" not in overview
            # The discarded-jobs item names the latest one, which this viewer may not view.
            assert f"job {ids['discarded']} (app.ChargeCard)" not in overview
            assert "left out here" in overview
            # Jobs by queue: a row per queue the viewer may view.
            assert f'href="{MOUNT}/jobs?queue=default"' in overview
            assert f'href="{MOUNT}/jobs?queue=billing"' not in overview
            # The rows' own pages agree with the lists.
            assert (await viewer.get(f"{MOUNT}/jobs/{ids['theirs']}")).status_code == 403
            assert (await viewer.get(f"{MOUNT}/jobs/{ids['mine']}")).status_code == 200
            assert (await viewer.get(f"{MOUNT}/cron/billing_rollup")).status_code == 403
            assert (await viewer.get(f"{MOUNT}/audit/{ids['other_event']}")).status_code == 403
        if batch:
            # One call per list, not one per row.
            assert [a for a, _ in auth.batches] == [
                "view_jobs",
                "view_cron",
                "view_queues",
                "view_audit",
                "view_audit",  # the overview's recent actions (its one discarded job: authorize)
                "view_queues",  # the overview's jobs by queue
            ]
    finally:
        await powertools.stop()


async def test_lists_say_nothing_when_nothing_was_left_out(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = await seed(conn)
    everything = {"nightly_sync", "billing_rollup", "default", "billing", *ids.values()}
    powertools = build_powertools(db_url, auth=TeamAuth(everything))
    try:
        async with client(host_app(powertools), "ops-viewer") as viewer:
            for path in ("/jobs", "/cron", "/queues", "/audit"):
                page = (await viewer.get(f"{MOUNT}{path}")).text
                assert "left out here" not in page, path
            assert "app.ChargeCard" in (await viewer.get(f"{MOUNT}/jobs")).text
    finally:
        await powertools.stop()
