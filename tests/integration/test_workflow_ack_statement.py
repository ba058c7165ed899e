"""The ack of a workflow step is one statement: oban's ack, the step's outcome, the
workflow's counters and its dependent's release, together (workflows.finish_steps). A
chain of steps pays its acks what plain jobs pay oban's; what is counted here is what
the connection sent to the server (libpq's protocol trace), not what the code says it
does."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from oban import Job, Oban, worker
from oban._executor import AckAction
from psycopg import sql

from oban_powertools.runtime.acks import _params, ack_in_transaction
from oban_powertools.runtime.workflow_release import Q, _finish_params
from oban_powertools.workflows import Workflow
from tests.support.limits import oban_nodes, query


@worker(queue="wf-ack-statement")
class Noop:
    async def process(self, job: Any) -> None:
        return None


@pytest.fixture
async def oban(db_url: str) -> AsyncIterator[Oban]:
    # No queue: the steps are moved by the tests alone.
    async with oban_nodes(db_url, ["wf-ack-statement"], {}) as (node,):
        yield node


async def _executing(url: str, job_id: int) -> Job:
    """Job ``job_id`` as oban's fetch leaves it: executing, this attempt's time set."""
    (row,) = await query(
        url,
        "UPDATE oban_jobs SET state = 'executing', attempt = attempt + 1, "
        "attempted_at = timezone('UTC', now()) WHERE id = %(id)s "
        "RETURNING id, worker, queue, args, meta, attempt, max_attempts, attempted_at",
        {"id": job_id},
    )
    return Job(
        id=row["id"],
        worker=row["worker"],
        queue=row["queue"],
        args=row["args"],
        meta=row["meta"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        attempted_at=row["attempted_at"],
    )


def _sent(trace: str) -> list[str]:
    """The statements the client sent: simple queries and extended-protocol executes."""
    found = []
    for line in trace.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == "F" and parts[2] in ("Query", "Execute"):
            found.append(parts[2] if parts[2] == "Execute" else parts[3].strip().strip('"'))
    return found


async def test_a_chain_steps_ack_releases_its_dependent_in_the_ack_statement_itself(
    db_url: str, oban: Oban
) -> None:
    wf = Workflow(name="ack-statement").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    a, b = await wf.enqueue(oban)
    job = await _executing(db_url, a.id)
    with tempfile.TemporaryFile("w+") as out:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            acked = await ack_in_transaction(conn, [AckAction(job, "completed")], schema="public")
            conn.pgconn.untrace()
        out.seek(0, os.SEEK_SET)
        sent = _sent(out.read())
    assert acked == [a.id]
    states = await query(db_url, "SELECT id, state::text AS state FROM oban_jobs ORDER BY id")
    assert states == [{"id": a.id, "state": "completed"}, {"id": b.id, "state": "available"}]
    # BEGIN, the ack with the release, COMMIT: nothing else went to the server.
    assert sent == ["BEGIN", "Execute", "COMMIT"], sent


async def test_a_stale_ack_changes_nothing_and_releases_nothing(db_url: str, oban: Oban) -> None:
    wf = Workflow(name="ack-stale").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    a, b = await wf.enqueue(oban)
    job = await _executing(db_url, a.id)
    await _executing(db_url, a.id)  # rescued and fetched again: a new attempt's time
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        acked = await ack_in_transaction(conn, [AckAction(job, "completed")], schema="public")
    assert acked == []
    states = await query(db_url, "SELECT id, state::text AS state FROM oban_jobs ORDER BY id")
    assert states == [{"id": a.id, "state": "executing"}, {"id": b.id, "state": "suspended"}]


# A UUID Python reads (32 digits, no hyphens) is still not the canonical form the
# statement takes for a workflow id: logged as malformed, as anything else it refuses.
@pytest.mark.parametrize("workflow_id", ["not-a-uuid", "5f0c7a3e9b1d4c2a8e6f0b1c2d3e4f5a"])
async def test_a_malformed_workflow_id_finishes_no_step_and_still_acks(
    db_url: str, oban: Oban, caplog: pytest.LogCaptureFixture, workflow_id: str
) -> None:
    (inserted,) = await oban.enqueue_many(
        [Noop.new({}, meta={"workflow_id": workflow_id, "workflow_step": "a"})]
    )
    job = await _executing(db_url, inserted.id)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        acked = await ack_in_transaction(conn, [AckAction(job, "completed")], schema="public")
    assert acked == [inserted.id]
    assert "malformed meta.workflow_id" in caplog.text
    (row,) = await query(db_url, "SELECT state::text AS state FROM oban_jobs")
    assert row["state"] == "completed"


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def test_the_prepared_ack_reads_oban_jobs_by_key_alone(db_url: str, oban: Oban) -> None:
    """In the plan a prepared statement settles on (the generic one), no index on
    oban_jobs' state serves the ack or the release: such an index holds the dead entries
    of every job acked or released since the table's last vacuum, and a scan of it by
    state reads them all."""
    wf = Workflow(name="ack-plan").add("a", Noop.new({})).add("b", Noop.new({}), deps=["a"])
    a, _ = await wf.enqueue(oban)
    job = await _executing(db_url, a.id)
    statement = Q.finish_steps.at("public")
    params = {**_params([AckAction(job, "completed")]), **_finish_params(())}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        cur = await conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + statement, params)
        row = await cur.fetchone()
        await conn.rollback()
    assert row is not None
    nodes = _nodes(row[0][0]["Plan"])
    # (On this two-job table a sequential scan is the cheapest read, and harmless.)
    indexes = {n["Index Name"] for n in nodes if "oban_jobs" in n.get("Index Name", "")}
    assert indexes <= {"oban_jobs_pkey"}, indexes
