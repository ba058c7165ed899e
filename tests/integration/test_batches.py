"""Batches on real oban nodes: counters kept per ack, each callback enqueued exactly
once as a real job, even when the batch's last jobs finish at the same moment on
several nodes; bad callbacks refused at build time with nothing inserted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from oban import Cancel, telemetry, worker
from oban.worker import worker_name

from oban_powertools import BatchCallbackUnknown, BatchError
from oban_powertools.batches import Batch, callback_batch_id
from oban_powertools.runtime.batch_release import CALLBACK_EVENT
from tests.support.composites import composite_nodes
from tests.support.limits import count, query
from tests.support.waiting import eventually

CALLED: list[tuple[str, str]] = []  # (batch id, kind) per callback run
GATE = {"event": asyncio.Event(), "waiting": 0}


@worker(queue="batched", max_attempts=1)
class Part:
    async def process(self, job: Any) -> Any:
        if job.args.get("gate"):
            GATE["waiting"] += 1
            await GATE["event"].wait()
        outcome = job.args.get("outcome")
        if outcome == "fail":
            raise RuntimeError("part failed on purpose")
        if outcome == "cancel":
            return Cancel("cancelled on purpose")
        return None


@worker(queue="callbacks")
class Done:
    async def process(self, job: Any) -> None:
        CALLED.append((str(callback_batch_id(job)), job.meta["batch_callback"]))


@worker(queue="callbacks")
class Exhausted(Done):
    pass


@pytest.fixture(autouse=True)
def reset() -> None:
    CALLED.clear()
    GATE["event"] = asyncio.Event()
    GATE["waiting"] = 0


BATCH = """
SELECT jobs_total, jobs_completed, jobs_cancelled, jobs_discarded, finished_at IS NOT NULL AS finished
FROM powertools_batches WHERE id = %(id)s
"""
CALLBACKS = """
SELECT c.kind, c.job_id, j.worker, j.state::text AS state, j.meta
FROM powertools_batch_callbacks c JOIN oban_jobs j ON j.id = c.job_id
WHERE c.batch_id = %(id)s ORDER BY c.kind
"""
CALLBACK_JOBS = "SELECT count(*) AS n FROM oban_jobs WHERE queue = 'callbacks'"


async def test_a_batch_that_completes_enqueues_on_completed_once(db_url: str) -> None:
    events: list[dict[str, Any]] = []
    telemetry.attach("test-batch", [CALLBACK_EVENT], lambda _n, meta: events.append(meta))
    try:
        async with composite_nodes(db_url, ["batch-a"], {"batched": 5, "callbacks": 2}) as (oban,):
            batch = Batch(name="import", on_completed=Done, on_exhausted=worker_name(Exhausted))
            batch.add(*(Part.new({"n": n}) for n in range(12)))
            jobs = await batch.enqueue(oban)
            assert len(jobs) == 12
            await eventually(lambda: len(CALLED) == 1, what="on_completed ran")
    finally:
        telemetry.detach("test-batch")
    assert CALLED == [(str(batch.id), "on_completed")]
    row = (await query(db_url, BATCH, {"id": batch.id}))[0]
    assert row == {
        "jobs_total": 12,
        "jobs_completed": 12,
        "jobs_cancelled": 0,
        "jobs_discarded": 0,
        "finished": True,
    }
    callbacks = await query(db_url, CALLBACKS, {"id": batch.id})
    assert [(c["kind"], c["worker"], c["state"]) for c in callbacks] == [
        ("on_completed", worker_name(Done), "completed")
    ]
    assert callbacks[0]["meta"]["batch_callback_of"] == str(batch.id)
    assert [(e["kind"], e["job_id"], e["jobs_completed"]) for e in events] == [
        ("on_completed", callbacks[0]["job_id"], 12)
    ]


async def test_a_batch_with_failures_enqueues_on_exhausted_and_on_cancelled(db_url: str) -> None:
    async with composite_nodes(db_url, ["batch-b"], {"batched": 5, "callbacks": 2}) as (oban,):
        batch = Batch(
            name="mixed",
            on_completed=Done,
            on_exhausted=Exhausted,
            on_cancelled=Done,
            callback_args={"report": "mixed"},
        )
        batch.add(
            Part.new({}),
            Part.new({"outcome": "fail"}),
            Part.new({"outcome": "cancel"}),
            Part.new({}),
        )
        await batch.enqueue(oban)
        await eventually(lambda: len(CALLED) == 2, what="two callbacks ran")
    assert sorted(CALLED) == [(str(batch.id), "on_cancelled"), (str(batch.id), "on_exhausted")]
    row = (await query(db_url, BATCH, {"id": batch.id}))[0]
    assert (row["jobs_completed"], row["jobs_cancelled"], row["jobs_discarded"]) == (2, 1, 1)
    callbacks = await query(db_url, CALLBACKS, {"id": batch.id})
    assert [c["kind"] for c in callbacks] == ["on_cancelled", "on_exhausted"]
    args = await query(db_url, "SELECT args FROM oban_jobs WHERE queue = 'callbacks' ORDER BY id")
    assert all(a["args"] == {"report": "mixed"} for a in args)


async def test_twenty_final_acks_at_once_on_three_nodes_fire_each_callback_once(
    db_url: str,
) -> None:
    rounds = 4
    async with composite_nodes(
        db_url, ["batch-x", "batch-y", "batch-z"], {"batched": 10, "callbacks": 5}
    ) as nodes:
        for r in range(rounds):
            GATE["event"] = asyncio.Event()
            GATE["waiting"] = 0
            batch = Batch(name=f"race-{r}", on_completed=Done, on_exhausted=Exhausted)
            outcome = None if r % 2 == 0 else "fail"
            batch.add(
                *(
                    Part.new({"gate": True, "outcome": outcome if n == 7 else None})
                    for n in range(20)
                )
            )
            await batch.enqueue(nodes[r % 3])
            # All twenty running at once (spread over the nodes), then released together.
            await eventually(lambda: GATE["waiting"] == 20, within=15, what="20 parts running")
            spread = await query(
                db_url,
                "SELECT count(DISTINCT attempted_by[1]) AS n FROM oban_jobs "
                "WHERE queue = 'batched' AND state = 'executing'",
            )
            assert spread[0]["n"] >= 2
            GATE["event"].set()
            await eventually(
                lambda b=batch: _callbacks_of(db_url, b.id, 1), within=15, what="the callback"
            )
        await eventually(lambda: len(CALLED) == rounds, within=15, what="every callback ran")
    assert await count(db_url, CALLBACK_JOBS) == rounds
    kinds = await query(
        db_url,
        "SELECT c.batch_id, c.kind, count(*) AS n FROM powertools_batch_callbacks c "
        "GROUP BY 1, 2 ORDER BY 1",
    )
    assert all(k["n"] == 1 for k in kinds) and len(kinds) == rounds
    assert sorted(kind for _, kind in CALLED) == ["on_completed"] * 2 + ["on_exhausted"] * 2


async def _callbacks_of(url: str, batch_id: Any, n: int) -> bool:
    return len(await query(url, CALLBACKS, {"id": batch_id})) == n


async def test_a_retried_finished_job_is_not_counted_twice(db_url: str) -> None:
    async with composite_nodes(db_url, ["batch-r"], {"batched": 2, "callbacks": 1}) as (oban,):
        batch = Batch(name="retry", on_exhausted=Exhausted, on_completed=Done)
        first, failing = await batch.add(Part.new({}), Part.new({"outcome": "fail"})).enqueue(oban)
        await eventually(lambda: len(CALLED) == 1, what="on_exhausted ran")
        await oban.retry_job(failing.id)
        await eventually(
            lambda: count(
                db_url,
                "SELECT count(*) AS n FROM oban_jobs WHERE id = %(id)s AND state = 'discarded' "
                "AND attempt = 2",
                {"id": failing.id},
            ),
            what="the retried job ran again",
        )
    row = (await query(db_url, BATCH, {"id": batch.id}))[0]
    assert (row["jobs_completed"], row["jobs_discarded"]) == (1, 1)
    assert CALLED == [(str(batch.id), "on_exhausted")]


async def test_bad_batches_raise_clear_errors_and_insert_nothing(db_url: str) -> None:
    with pytest.raises(BatchCallbackUnknown, match="on_completed names worker 'nowhere.Nothing'"):
        Batch(name="bad", on_completed="nowhere.Nothing")
    with pytest.raises(BatchCallbackUnknown, match="not found in module"):
        Batch(name="bad", on_exhausted=f"{__name__}.Missing")
    with pytest.raises(BatchCallbackUnknown, match="not an oban worker"):
        Batch(name="bad", on_cancelled=dict)
    with pytest.raises(BatchError, match="has no jobs"):
        Batch(name="empty", on_completed=Done).jobs()
    with pytest.raises(BatchError, match="unique job"):
        Batch(name="u").add(Part.new({}, unique={"period": 60}))
    async with composite_nodes(db_url, ["batch-bad"], {"batched": 1}) as (oban,):
        batch = Batch(name="partial", on_completed=Done).add(Part.new({}), Part.new({}))
        jobs = batch.jobs()
        with pytest.raises(BatchError, match="holds 1 of its 2 jobs"):
            await oban.enqueue_many(jobs[0])
    assert await count(db_url, "SELECT count(*) AS n FROM oban_jobs") == 0
    assert await count(db_url, "SELECT count(*) AS n FROM powertools_batches") == 0


async def test_a_batch_enqueued_in_a_rolled_back_transaction_leaves_nothing(db_url: str) -> None:
    import psycopg

    async with composite_nodes(db_url, ["batch-tx"], {"batched": 1}) as (oban,):
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            async with conn.transaction(force_rollback=True):
                batch = Batch(name="tx", on_completed=Done).add(Part.new({}))
                await batch.enqueue(oban, conn=conn)
    assert await count(db_url, "SELECT count(*) AS n FROM oban_jobs") == 0
    assert await count(db_url, "SELECT count(*) AS n FROM powertools_batches") == 0
