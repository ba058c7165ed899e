"""The lifeline repairs through the one pipeline: rescue_jobs and discard_stuck_jobs preview
exactly their set with each job's evidence (given jobs, or a queue's orphaned or stuck
jobs found by the preview), confirm changes exactly it with its audit event, drift changes
nothing (given jobs) or leaves and reports the changed jobs (a queue's set), the seam is
asked about every job, and bad input is a clear error that changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from oban_powertools import Powertools
from oban_powertools.actions import errors
from tests.support.seams import OPERATOR, VIEWER, Actor, RoleAuth, make_powertools

GRACE = 30
STUCK_AFTER = 600

PRODUCER = (
    "INSERT INTO oban_producers (uuid, name, node, queue, meta, started_at, updated_at) "
    "VALUES (%(uuid)s, 'Oban', %(node)s, %(queue)s, '{}', timezone('UTC', now()), "
    "timezone('UTC', now()) - make_interval(secs => %(age)s))"
)
JOB = (
    "INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, attempted_at, "
    "attempted_by) VALUES (%(state)s::oban_job_state, %(queue)s, 'app.Work', '{}', "
    "%(attempt)s, %(max)s, timezone('UTC', now()) - make_interval(secs => %(running)s), "
    "%(by)s) RETURNING id"
)


@dataclass
class World:
    pt: Powertools
    live: str = field(default_factory=lambda: str(uuid.uuid4()))
    dead: str = field(default_factory=lambda: str(uuid.uuid4()))
    orphans: list[str] = field(default_factory=list)  # queue work, producer dead
    spent: str = ""  # an orphan with no attempt left
    gone: str = ""  # queue other, producer row gone
    healthy: str = ""  # live producer, 10 s
    stuck: str = ""  # live producer, 1 h
    done: str = ""


async def job(pt: Powertools, **values: Any) -> str:
    params = {"state": "executing", "queue": "work", "attempt": 1, "max": 5, "running": 60}
    params.update(values)
    async with pt.db.connection() as conn:
        cur = await conn.execute(JOB, params)
        row = await cur.fetchone()
    assert row is not None
    return str(row["id"])


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    pt = make_powertools(db_url, lifeline_grace_seconds=GRACE, stuck_after_seconds=STUCK_AFTER)
    async with pt:
        w = World(pt)
        async with pt.db.connection() as conn:
            await conn.execute(
                PRODUCER, {"uuid": w.live, "node": "alive", "queue": "work", "age": 2}
            )
            await conn.execute(
                PRODUCER, {"uuid": w.dead, "node": "dead", "queue": "work", "age": 300}
            )
        w.orphans = [await job(pt, by=["dead", w.dead], running=400 + n) for n in range(3)]
        w.spent = await job(pt, by=["dead", w.dead], attempt=3, max=3)
        w.gone = await job(pt, queue="other", by=["vanished", str(uuid.uuid4())])
        w.healthy = await job(pt, by=["alive", w.live], running=10)
        w.stuck = await job(pt, by=["alive", w.live], running=3600)
        w.done = await job(pt, state="completed", by=["alive", w.live])
        yield w


async def states(pt: Powertools) -> dict[str, tuple[str, int]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute("SELECT id, state::text AS state, attempt FROM oban_jobs")
        return {str(r["id"]): (r["state"], r["attempt"]) for r in await cur.fetchall()}


async def audit(pt: Powertools, action: str) -> list[dict[str, Any]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT * FROM powertools_audit_events WHERE action = %s ORDER BY id", (action,)
        )
        return list(await cur.fetchall())


async def test_rescue_previews_the_orphans_with_evidence_and_confirm_changes_exactly_them(
    world: World,
) -> None:
    pt = world.pt
    targets = [*world.orphans, world.spent]
    before = await states(pt)
    preview = await pt.pipeline.preview(
        OPERATOR, "rescue_jobs", targets, {"queue": "work"}, surface="web"
    )
    assert sorted(preview.targets) == sorted(targets)
    assert set(preview.before) == set(targets)
    evidence = preview.before[world.orphans[0]]
    assert evidence["node"] == "dead" and evidence["producer"] == world.dead
    assert evidence["last_heartbeat_at"] is not None and evidence["heartbeat_age_seconds"] >= 299
    assert evidence["running_seconds"] >= 400
    assert f"on node dead, producer {world.dead}" in preview.effect
    assert "last heartbeat" in preview.effect and "1 of them has no attempt left" in preview.effect
    assert preview.params == {"queue": "work", "grace_seconds": GRACE, "stuck_after_seconds": 600}

    result = await pt.pipeline.execute(OPERATOR, preview.token, "node dead was replaced")
    after = await states(pt)
    for job_id in world.orphans:
        assert after[job_id] == ("available", 1)  # the attempt kept
    assert after[world.spent] == ("discarded", 3)
    untouched = set(before) - set(targets)
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}

    (event,) = await audit(pt, "job.rescued")
    assert event["id"] == result.audit_event_id
    assert event["command"] == "rescue_jobs" and event["principal_id"] == OPERATOR.id
    assert sorted(event["detail"]["targets"]) == sorted(targets)
    assert event["reason"] == "node dead was replaced"
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT meta, errors FROM oban_jobs WHERE id = %s", (int(world.orphans[0]),)
        )
        row = await cur.fetchone()
    assert row is not None and row["meta"]["rescued"] == 1
    assert f"producer {world.dead}" in row["errors"][-1]["error"]
    assert "Ops Demo (ops-demo)" in row["errors"][-1]["error"]


async def test_a_job_changed_or_a_producer_back_since_the_preview_is_drift_and_nothing_changes(
    world: World,
) -> None:
    pt = world.pt
    preview = await pt.pipeline.preview(OPERATOR, "rescue_jobs", world.orphans)
    async with pt.db.connection() as conn:  # the lifeline got to one first
        await conn.execute(
            "UPDATE oban_jobs SET state = 'available' WHERE id = %s", (int(world.orphans[1]),)
        )
    with pytest.raises(errors.PreviewDrifted) as drifted:
        await pt.pipeline.execute(OPERATOR, preview.token, "rescue them")
    assert world.orphans[1] in str(drifted.value)
    now = await states(pt)
    assert [now[j][0] for j in (world.orphans[0], world.orphans[2])] == ["executing"] * 2

    second = await pt.pipeline.preview(OPERATOR, "rescue_jobs", [world.orphans[0]])
    async with pt.db.connection() as conn:  # the dead node's producer heartbeats again
        await conn.execute(
            "UPDATE oban_producers SET updated_at = timezone('UTC', now()) WHERE uuid = %s",
            (world.dead,),
        )
    with pytest.raises(errors.PreviewDrifted):
        await pt.pipeline.execute(OPERATOR, second.token, "rescue it")
    assert (await states(pt))[world.orphans[0]][0] == "executing"
    assert await audit(pt, "job.rescued") == []


async def test_bad_input_is_a_clear_error_and_changes_nothing(world: World) -> None:
    pt = world.pt
    before = await states(pt)
    with pytest.raises(errors.InvalidParams, match="unknown queue 'nowhere'"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", world.orphans, {"queue": "nowhere"})
    with pytest.raises(errors.NotApplicable, match="not orphaned"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [world.healthy])
    with pytest.raises(errors.NotApplicable, match="not orphaned"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [*world.orphans, world.stuck])
    with pytest.raises(errors.NotApplicable, match="in queue 'other', not 'work'"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [world.gone], {"queue": "work"})
    with pytest.raises(errors.NotApplicable, match="not executing"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [world.done])
    with pytest.raises(errors.UnknownTarget):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", ["987654321"])
    with pytest.raises(errors.InvalidTargets):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", ["12; DROP TABLE oban_jobs"])
    with pytest.raises(errors.InvalidParams):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", world.orphans, {"grace_seconds": 0})
    with pytest.raises(errors.NotApplicable, match="not stuck"):
        await pt.pipeline.preview(OPERATOR, "discard_stuck_jobs", [world.healthy])
    assert await states(pt) == before
    async with pt.db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM powertools_previews")
        row = await cur.fetchone()
    assert row is not None and row["n"] == 0


async def test_an_orphan_without_a_producer_row_is_rescued_too(world: World) -> None:
    pt = world.pt
    preview = await pt.pipeline.preview(OPERATOR, "rescue_jobs", [world.gone], {"queue": "other"})
    assert "its producer row is gone" in preview.effect
    await pt.pipeline.execute(OPERATOR, preview.token, "gone for good")
    assert (await states(pt))[world.gone] == ("available", 1)


async def test_discard_stuck_jobs_discards_them_and_tells_the_live_node_to_stop(
    world: World, db_url: str
) -> None:
    pt = world.pt
    signals: list[dict[str, Any]] = []
    listener = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    await listener.execute('LISTEN "public.oban_signal"')
    preview = await pt.pipeline.preview(
        OPERATOR, "discard_stuck_jobs", [world.stuck, world.orphans[0]]
    )
    assert "executing for 60 min" in preview.effect and "producer alive" in preview.effect
    result = await pt.pipeline.execute(OPERATOR, preview.token, "hung on a lock")
    try:
        gen = listener.notifies(timeout=5, stop_after=2)
        async for note in gen:
            signals.append(json.loads(note.payload))
    finally:
        await listener.close()
    now = await states(pt)
    assert now[world.stuck][0] == "discarded" and now[world.orphans[0]][0] == "discarded"
    assert now[world.healthy][0] == "executing"
    assert sorted(s["job_id"] for s in signals) == sorted([int(world.stuck), int(world.orphans[0])])
    assert all(s["action"] == "pkill" for s in signals)
    (event,) = await audit(pt, "job.discarded")
    assert event["id"] == result.audit_event_id and event["command"] == "discard_stuck_jobs"


async def test_a_viewer_may_not_rescue_and_the_refusal_is_audited(world: World) -> None:
    pt = world.pt
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(VIEWER, "rescue_jobs", world.orphans)
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(VIEWER, "discard_stuck_jobs", [world.stuck])
    denied = await audit(pt, "security.denied")
    assert {e["command"] for e in denied} == {"rescue_jobs", "discard_stuck_jobs"}
    assert (await states(pt))[world.orphans[0]][0] == "executing"
    await asyncio.sleep(0)


# -- a queue's repair: the form names a queue and kind, the preview finds the set --------


async def previews(pt: Powertools) -> int:
    async with pt.db.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM powertools_previews")
        row = await cur.fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_queue_rescue_previews_exactly_its_orphans_and_confirm_changes_exactly_them(
    world: World,
) -> None:
    pt = world.pt
    orphaned = sorted([*world.orphans, world.spent], key=int)
    before = await states(pt)
    preview = await pt.pipeline.preview(
        OPERATOR, "rescue_jobs", [], {"queue": "work", "kind": "orphaned"}, surface="web"
    )
    # Exactly the orphans of queue work, oldest first: not its healthy or stuck job, not
    # the orphan of queue other, not the completed one.
    assert sorted(preview.targets, key=int) == orphaned
    assert preview.targets[0] == world.orphans[2]  # the longest executing
    assert set(preview.before) == set(orphaned)
    assert preview.before[world.orphans[0]]["node"] == "dead"
    assert preview.params == {
        "queue": "work",
        "kind": "orphaned",
        "found": 4,
        "grace_seconds": GRACE,
        "stuck_after_seconds": STUCK_AFTER,
    }
    assert preview.resource_id == "bulk:4"
    assert "Rescues the 4 orphaned jobs of queue work, exactly these" in preview.effect
    assert f"job {world.orphans[0]} on node dead, producer {world.dead}" in preview.effect

    result = await pt.pipeline.execute(OPERATOR, preview.token, "node dead was replaced")
    assert result.skipped == []
    after = await states(pt)
    assert {j: after[j][0] for j in world.orphans} == dict.fromkeys(world.orphans, "available")
    assert after[world.spent] == ("discarded", 3)
    untouched = set(before) - set(orphaned)
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    (event,) = await audit(pt, "job.rescued")
    assert event["id"] == result.audit_event_id and event["command"] == "rescue_jobs"
    assert sorted(event["detail"]["targets"], key=int) == orphaned
    assert "skipped" not in event["detail"]
    assert event["detail"]["plan_hash"] == preview.plan_hash


async def test_a_queue_discard_takes_its_stuck_jobs_only(world: World) -> None:
    pt = world.pt
    preview = await pt.pipeline.preview(
        OPERATOR, "discard_stuck_jobs", [], {"queue": "work", "kind": "stuck"}
    )
    assert preview.targets == [world.stuck]
    assert "Discards the 1 stuck job of queue work, exactly these" in preview.effect
    await pt.pipeline.execute(OPERATOR, preview.token, "hung on a lock")
    now = await states(pt)
    assert now[world.stuck][0] == "discarded"
    assert [now[j][0] for j in (world.healthy, *world.orphans)] == ["executing"] * 4
    # The default kind of discard_stuck_jobs is stuck; its orphans can be asked for too.
    orphans = await pt.pipeline.preview(
        OPERATOR, "discard_stuck_jobs", [], {"queue": "work", "kind": "orphaned"}
    )
    assert sorted(orphans.targets) == sorted([*world.orphans, world.spent])


async def test_a_queue_set_larger_than_a_preview_takes_the_oldest_and_says_how_many_in_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oban_powertools.actions import lifeline as lifeline_actions

    monkeypatch.setattr(lifeline_actions, "MAX_JOBS", 2)
    preview = await world.pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work"})
    assert preview.targets == [world.orphans[2], world.orphans[1]]
    assert preview.params["found"] == 4 and preview.params["kind"] == "orphaned"
    assert "the oldest 2 of the 4 orphaned jobs of queue work" in preview.effect
    assert "preview again for the rest" in preview.effect


async def test_a_queue_set_job_changed_by_the_confirm_is_left_and_reported_the_rest_change(
    world: World,
) -> None:
    pt = world.pt
    preview = await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work"})
    async with pt.db.connection() as conn:  # the lifeline got to one first
        await conn.execute(
            "UPDATE oban_jobs SET state = 'available' WHERE id = %s", (int(world.orphans[1]),)
        )
    result = await pt.pipeline.execute(OPERATOR, preview.token, "rescue them")
    assert result.skipped == [world.orphans[1]]
    now = await states(pt)
    assert now[world.orphans[1]] == ("available", 1)  # as the lifeline left it
    assert [now[j][0] for j in (world.orphans[0], world.orphans[2])] == ["available"] * 2
    assert now[world.spent][0] == "discarded"
    (event,) = await audit(pt, "job.rescued")
    assert event["detail"]["skipped"] == [world.orphans[1]]
    assert world.orphans[1] not in event["detail"]["targets"]
    assert len(event["detail"]["targets"]) == 3
    assert (
        "1 of the 4 previewed targets had changed since the preview" in (event["detail"]["effect"])
    )
    assert event["after"]["states"] == {"available": 2, "discarded": 1}
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT errors FROM oban_jobs WHERE id = %s", (int(world.orphans[1]),)
        )
        row = await cur.fetchone()
    assert row is not None and row["errors"] == []  # not touched by the operator's rescue


async def test_a_queue_set_wholly_changed_by_the_confirm_drifts_and_changes_nothing(
    world: World,
) -> None:
    pt = world.pt
    preview = await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work"})
    async with pt.db.connection() as conn:  # the dead node's producer heartbeats again
        await conn.execute(
            "UPDATE oban_producers SET updated_at = timezone('UTC', now()) WHERE uuid = %s",
            (world.dead,),
        )
    with pytest.raises(errors.PreviewDrifted):
        await pt.pipeline.execute(OPERATOR, preview.token, "rescue them")
    assert [(await states(pt))[j][0] for j in world.orphans] == ["executing"] * 3
    assert await audit(pt, "job.rescued") == []
    with pytest.raises(errors.PreviewDrifted):  # recorded on the preview
        await pt.pipeline.execute(OPERATOR, preview.token, "rescue them")


async def test_a_queue_repair_with_bad_input_is_a_clear_error_and_changes_nothing(
    world: World,
) -> None:
    pt = world.pt
    before = await states(pt)
    with pytest.raises(errors.InvalidParams, match="unknown queue 'nowhere'"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "nowhere"})
    with pytest.raises(errors.InvalidParams, match="takes kind orphaned, not 'stuck'"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work", "kind": "stuck"})
    with pytest.raises(errors.InvalidParams, match="takes kind stuck or orphaned, not 'all'"):
        await pt.pipeline.preview(
            OPERATOR, "discard_stuck_jobs", [], {"queue": "work", "kind": "all"}
        )
    with pytest.raises(errors.InvalidParams, match="takes a queue"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"kind": "orphaned"})
    with pytest.raises(errors.InvalidParams, match="is not a queue name"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work'; --"})
    with pytest.raises(errors.InvalidParams, match="not found"):
        await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work", "found": "1"})
    with pytest.raises(errors.NotApplicable, match="no stuck job in queue 'other' now"):
        await pt.pipeline.preview(OPERATOR, "discard_stuck_jobs", [], {"queue": "other"})
    # Given jobs with a kind: each must be of it.
    with pytest.raises(errors.NotApplicable, match="orphaned, not stuck"):
        await pt.pipeline.preview(
            OPERATOR, "discard_stuck_jobs", [world.orphans[0]], {"kind": "stuck"}
        )
    assert await states(pt) == before
    assert await previews(pt) == 0


async def test_a_queue_repair_asks_the_seam_about_every_job_it_found(world: World) -> None:
    pt = world.pt
    auth = pt.config.auth
    assert isinstance(auth, RoleAuth)
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(VIEWER, "rescue_jobs", [], {"queue": "work"})
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(None, "rescue_jobs", [], {"queue": "work"})
    # An operator without the action on jobs at all is refused before the set is read: a
    # queue that does not exist is refused the same way, so the refusal tells nothing.
    none = Actor("ops-none", "Ops None", "operator", allowed_resources=frozenset())
    auth.actors[none.id] = none
    auth.calls.clear()
    for queue in ("work", "no_such_queue"):
        with pytest.raises(errors.Unauthorized):
            await pt.pipeline.preview(none, "rescue_jobs", [], {"queue": queue})
    assert [c[2] for c in auth.calls if c[0] == "ops-none"] == ["job", "job"]
    # An operator allowed the action and two of the queue's four orphans may not repair
    # the queue's set: the seam is asked about every job found.
    partial = Actor(
        "ops-partial",
        "Ops Partial",
        "operator",
        allowed_resources=frozenset({"job", f"job:{world.orphans[0]}", f"job:{world.orphans[1]}"}),
    )
    auth.actors[partial.id] = partial
    auth.calls.clear()
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(partial, "rescue_jobs", [], {"queue": "work"})
    asked = [c[2] for c in auth.calls if c[0] == "ops-partial" and c[1] == "rescue_jobs"]
    assert asked[0] == "job" and len(asked) > 1
    assert all(c.startswith("job:") for c in asked[1:])
    denied = await audit(pt, "security.denied")
    assert len(denied) == 5 and {e["command"] for e in denied} == {"rescue_jobs"}
    assert denied[-1]["principal_id"] == "ops-partial"
    assert await previews(pt) == 0
    assert (await states(pt))[world.orphans[0]][0] == "executing"

    # The confirm asks again: an operator whose grant is gone by then changes nothing.
    preview = await pt.pipeline.preview(OPERATOR, "rescue_jobs", [], {"queue": "work"})
    auth.calls.clear()
    revoked = Actor("ops-demo", "Ops Demo", "operator", allowed_resources=frozenset())
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.execute(revoked, preview.token, "rescue them")
    assert any(c[1] == "rescue_jobs" for c in auth.calls)
    assert (await states(pt))[world.orphans[0]][0] == "executing"
