"""Races: many confirms of one token at once, two operators pausing and resuming the same
entry at once, and bulk actions racing a real oban worker that is changing the same jobs.

Everything goes through HTTP (the pages and the JSON API) against a real PostgreSQL;
concurrency is real at the database, where the pipeline's locks must hold.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from oban import Job, Oban, worker
from oban.worker import worker_name
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from tests.hostile.world import (
    OPERATOR,
    OTHER_OPERATOR,
    assert_security_headers,
    client,
    csrf_for,
    seed_markers,
    token_in,
)
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, host_app, insert_job

PREVIEW = f"{MOUNT}/actions/preview"
CONFIRM = f"{MOUNT}/actions/confirm"


async def web_preview(
    c: httpx.AsyncClient, user: str, action: str, targets: list[str]
) -> httpx.Response:
    return await c.post(
        PREVIEW,
        data={"csrf_token": csrf_for(user), "action": action, "target": targets},
    )


async def web_confirm(c: httpx.AsyncClient, user: str, token: str, reason: str) -> httpx.Response:
    return await c.post(
        CONFIRM, data={"csrf_token": csrf_for(user), "token": token, "reason": reason}
    )


async def test_many_concurrent_confirms_of_one_token_apply_once(pt: Powertools, conn: Any) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    user = OPERATOR.username
    async with client(app, user) as ops:
        token = token_in((await web_preview(ops, user, "pause_cron_entry", ["nightly_sync"])).text)
    clients = [client(app, user) for _ in range(24)]
    try:

        async def fire(i: int) -> httpx.Response:
            c = clients[i]
            if i % 2:
                return await c.post(
                    f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": f"racer {i}"}
                )
            return await web_confirm(c, user, token, f"racer {i}")

        responses = await asyncio.gather(*(fire(i) for i in range(len(clients))))
    finally:
        for c in clients:
            await c.aclose()
    statuses = sorted(r.status_code for r in responses)
    winners = [r for r in responses if r.status_code in (200, 303)]
    assert len(winners) == 1, statuses
    assert statuses.count(409) == len(responses) - 1, statuses
    for r in responses:
        assert_security_headers(r)
        if r.status_code == 409 and r.request.url.path.startswith(f"{MOUNT}/api/"):
            assert r.json()["error"]["code"] == "preview_consumed"
        elif r.status_code == 409:
            assert "already confirmed" in r.text
    cur = await conn.execute(
        "SELECT reason FROM powertools_audit_events WHERE preview_token = %s", (token,)
    )
    (event,) = await cur.fetchall()
    cur = await conn.execute(
        "SELECT paused, paused_reason, version FROM powertools_cron_entries "
        "WHERE name = 'nightly_sync'"
    )
    entry = await cur.fetchone()
    # The one change is the winner's, recorded once, with the winner's reason.
    assert entry["paused"] is True and entry["paused_reason"] == event["reason"]
    assert entry["version"] == 2


async def test_two_operators_pausing_and_resuming_at_once_lose_no_update(
    pt: Powertools, conn: Any
) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    users = (OPERATOR.username, OTHER_OPERATOR.username)
    clients = {u: client(app, u) for u in users}
    outcomes: list[tuple[int, int]] = []
    try:
        for round_ in range(8):
            cur = await conn.execute(
                "SELECT paused FROM powertools_cron_entries WHERE name = 'nightly_sync'"
            )
            paused = (await cur.fetchone())["paused"]
            action = "resume_cron_entry" if paused else "pause_cron_entry"
            # Both look at the same state and preview the same change...
            panels = await asyncio.gather(
                *(web_preview(clients[u], u, action, ["nightly_sync"]) for u in users)
            )
            assert [p.status_code for p in panels] == [200, 200], round_
            tokens = [token_in(p.text) for p in panels]
            # ...and confirm at the same moment.
            done = await asyncio.gather(
                *(
                    web_confirm(clients[u], u, t, f"round {round_} by {u}")
                    for u, t in zip(users, tokens, strict=True)
                )
            )
            codes = sorted(r.status_code for r in done)
            assert codes == [303, 409], (round_, codes)
            loser = next(r for r in done if r.status_code == 409)
            assert "changed since the preview" in loser.text
            outcomes.append((codes[0], codes[1]))
    finally:
        for c in clients.values():
            await c.aclose()
    cur = await conn.execute(
        "SELECT action, principal_id, reason, before, after FROM powertools_audit_events "
        "WHERE resource_id = 'nightly_sync' AND preview_token IS NOT NULL ORDER BY id"
    )
    events = await cur.fetchall()
    cur = await conn.execute(
        "SELECT paused, paused_by_id, paused_reason, version FROM powertools_cron_entries "
        "WHERE name = 'nightly_sync'"
    )
    entry = await cur.fetchone()
    # One change per round, alternating, each starting from the state the previous one
    # left: the audit trail is an unbroken chain of versions, nothing overwritten.
    assert [e["action"] for e in events] == ["cron.paused", "cron.resumed"] * 4
    for previous, event in zip(events, events[1:], strict=False):
        assert event["before"]["version"] == previous["after"]["version"]
        assert event["before"]["paused"] == previous["after"]["paused"]
    assert entry["version"] == 1 + len(events) == events[-1]["after"]["version"]
    assert entry["paused"] is events[-1]["after"]["paused"] is False
    # Each loser's preview is marked drifted; every winner's consumed.
    cur = await conn.execute("SELECT status, count(*) AS n FROM powertools_previews GROUP BY 1")
    assert {r["status"]: r["n"] for r in await cur.fetchall()} == {"consumed": 8, "drifted": 8}


STARTED: dict[int, float] = {}


@worker(queue="race", max_attempts=1)
class RaceWorker:
    """Takes a moment per job and remembers which jobs it started, and when."""

    async def process(self, job: Job) -> None:
        STARTED.setdefault(job.id, time.monotonic())
        await asyncio.sleep(0.01)


async def test_bulk_actions_racing_a_real_worker_apply_exactly_their_set(
    pt: Powertools, conn: Any, db_url: str
) -> None:
    STARTED.clear()
    name = worker_name(RaceWorker)
    ids = [await insert_job(conn, queue="race", worker=name, args={"n": i}) for i in range(240)]
    app = host_app(pt)
    user = OPERATOR.username
    pool = AsyncConnectionPool(db_url, min_size=1, max_size=6, open=False)
    await pool.open()
    oban = Oban(pool=pool, node="race-node", queues={"race": 4}, stager={"interval": 0.05})
    attempts: list[tuple[str, int, int | None]] = []
    await oban.start()
    try:
        async with client(app, user) as ops:
            for i in range(40):
                action = ("cancel_job", "discard_job")[i % 2]
                states = ("available", "executing") if action == "cancel_job" else ("available",)
                cur = await conn.execute(
                    "SELECT id FROM oban_jobs WHERE queue = 'race' AND state::text = ANY(%s) "
                    "ORDER BY id LIMIT 30",
                    (list(states),),
                )
                targets = [str(r["id"]) for r in await cur.fetchall()]
                if not targets:
                    break
                panel = await web_preview(ops, user, action, targets)
                # The worker may finish a job between the select and the preview.
                assert panel.status_code in (200, 409), panel.text[:300]
                if panel.status_code == 409:
                    attempts.append((action, 409, None))
                    continue
                done = await web_confirm(ops, user, token_in(panel.text), f"race {i}")
                assert done.status_code in (303, 409), done.text[:300]
                if done.status_code == 409:
                    assert "changed since the preview" in done.text
                attempts.append((action, done.status_code, len(targets)))
                await asyncio.sleep(0.02)  # let the worker take some jobs before the next

        async def settled() -> bool:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM oban_jobs "
                "WHERE queue = 'race' AND state IN ('available', 'executing')"
            )
            return (await cur.fetchone())["n"] == 0

        await eventually(settled, within=30, what="the worker finishes the jobs")
    finally:
        await oban.stop()
        await pool.close()

    cur = await conn.execute(
        "SELECT e.command, e.after, e.detail, e.resource_id, p.targets, p.before "
        "FROM powertools_audit_events e JOIN powertools_previews p ON p.token = e.preview_token "
        "ORDER BY e.id"
    )
    events = await cur.fetchall()
    cur = await conn.execute(
        "SELECT status, targets FROM powertools_previews WHERE status <> 'consumed'"
    )
    unapplied = await cur.fetchall()
    cur = await conn.execute("SELECT id, state::text AS state FROM oban_jobs WHERE queue = 'race'")
    final = {str(r["id"]): r["state"] for r in await cur.fetchall()}
    assert len(final) == len(ids)
    # The race was real: some bulk actions went through while the worker ran.
    assert any(code == 303 for _a, code, _n in attempts), attempts
    stopped_by: dict[str, str] = {}  # job -> the state the operator's action put it in
    signalled: set[str] = set()  # executing jobs a cancel asked to stop
    for event in events:
        targets = event["targets"]
        # The event names exactly the previewed set (a bulk one in its detail).
        assert (event["detail"].get("targets") or [event["resource_id"]]) == targets
        goal = "cancelled" if event["command"] == "cancel_job" else "discarded"
        # Applied only if no target drifted: each was still in its previewed state.
        previewed = {t: event["before"][t]["state"] for t in targets}
        for target, state in previewed.items():
            if state == "executing":
                assert goal == "cancelled"
                signalled.add(target)
            else:
                assert state == "available", (target, state)
                stopped_by[target] = goal
        counts = event["after"]["states"] if len(targets) > 1 else {event["after"]["state"]: 1}
        assert counts.get(goal, 0) == sum(1 for s in previewed.values() if s == "available")
    for target, goal in stopped_by.items():
        # Applied means applied: the job stays stopped, and the worker never ran it.
        assert final[target] == goal, target
        assert int(target) not in STARTED, target
    for target in signalled:
        assert final[target] in ("completed", "cancelled"), target
    # Nothing but the confirmed actions stopped a job, and no drifted preview changed any:
    # every other job ran to completion.
    for target, state in final.items():
        if target not in stopped_by and target not in signalled:
            assert state == "completed", (target, state)
            assert int(target) in STARTED, target
    assert all(p["status"] == "drifted" for p in unapplied), unapplied
    assert len(events) + len(unapplied) == sum(1 for a in attempts if a[2] is not None)
