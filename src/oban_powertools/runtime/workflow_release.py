"""Releasing workflow steps in the transaction that acks their dependencies.

The workflow follow-up of :mod:`.acks` (and the routine the repair and the insert of
appended steps reuse). Given steps that finished, in one transaction:

1. each step's outcome is recorded once and the workflows' counters are incremented,
   their rows locked in id order. A step already finished, by a re-ack or an
   operator's retry of a finished step, is left out, so nothing below runs twice for
   it. A workflow whose steps have all finished takes its final state (the worst
   outcome of its steps) and, when it is a sub-workflow, finishes its parent's step in
   turn;
2. the dependents of the finished steps are decremented (``pending``) by the
   dependencies satisfied: completed, or cancelled / discarded where the dependent's
   policy is ``ignore``; a job step left with nothing pending is released: its job goes
   from ``suspended`` to ``available`` and its queue is woken (``wake``: the ack sends
   oban's insert notification where the acking producer will not fetch the job itself,
   see :mod:`.acks`), so the release does not wait for the stager's poll. A dependency
   cancelled / discarded under ``cancel`` cancels the dependent instead (its job is
   cancelled without running, the reason in ``meta.workflow_cancelled``), which
   finishes it and goes on down the graph; a sub-workflow step with nothing pending
   starts its sub-workflow (its steps without dependencies are released).

Both are ONE statement (``finish_steps``), and repeat with what they finished (cancelled
dependents, finished sub-workflows) until nothing more changes. The ack is that
statement's first round (:func:`ack_and_finish`): it acks the jobs too, so a step of a
chain costs its ack one statement, as a plain job's ack costs oban's.

``wake(queue)`` is called once per job released available into ``queue``.

Steps appended to a running workflow
====================================

An append locks the workflow's row, reads how the dependencies of its new steps stand,
inserts the steps and their edges, and grows the row's ``steps_total``, all before it
commits; ``finish_steps`` locks the same row. When the ack locks it first, the append
waits, then reads the dependency finished. When the append locks it first, the ack's
statement waits for the append's commit, but its snapshot (taken before it waited)
does not hold the new edges: the statement sees that the row as locked counts more
steps than the row in its snapshot, satisfies no dependent of that workflow's steps,
and says so (the workflow is not ``fresh``); the dependents of those steps are then
satisfied by a second statement (``satisfy_dependents``), whose snapshot, taken with
the lock held, holds every edge appended before. Only an append that raced the ack
pays that statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from .. import telemetry
from ..db.queries import StatementsInSchema

if TYPE_CHECKING:
    from .acks import AckedJob, AckTransaction

__all__ = [
    "FINISHED_STATES",
    "RELEASED_EVENT",
    "Finish",
    "Progress",
    "ack_and_finish",
    "after_ack",
    "propagate",
    "release_ready",
]

logger = logging.getLogger(__name__)

Q = StatementsInSchema(
    workflows=(
        "finish_steps cancel_jobs unfinished_steps satisfy_dependents release_jobs start_workflows"
    ),
)

RELEASED = telemetry.declare(
    "oban_powertools.workflow.released",
    measurements=("released", "cancelled", "steps_finished"),
    metadata=(
        "source",
        "released_job_ids",
        "cancelled_job_ids",
        "workflow_ids",
        "sub_workflows_started",
        "workflows_finished",
    ),
)
RELEASED_EVENT = RELEASED.name
FINISHED_STATES = frozenset({"completed", "cancelled", "discarded"})

type Wake = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Finish:
    """A step that finished: how, and (for a step taken down without running) why."""

    workflow_id: UUID
    name: str
    outcome: str
    cancelled_by: str | None = None


@dataclass(slots=True)
class Progress:
    """What one propagation did (its telemetry)."""

    finished: list[tuple[UUID, str, str]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # job ids
    cancelled: list[int] = field(default_factory=list)  # job ids cancelled unrun
    started: list[UUID] = field(default_factory=list)  # sub-workflows started
    workflows_finished: list[tuple[UUID, str]] = field(default_factory=list)

    def emit(self, source: str) -> None:
        """Report this progress as the ``workflow.released`` event."""
        telemetry.emit(
            RELEASED,
            {
                "released": len(self.released),
                "cancelled": len(self.cancelled),
                "steps_finished": len(self.finished),
            },
            {
                "source": source,
                "released_job_ids": list(self.released),
                "cancelled_job_ids": list(self.cancelled),
                "workflow_ids": sorted({str(w) for w, _, _ in self.finished}),
                "sub_workflows_started": [str(w) for w in self.started],
                "workflows_finished": [
                    {"id": str(w), "state": s} for w, s in self.workflows_finished
                ],
            },
        )

    def __bool__(self) -> bool:
        return bool(self.finished or self.released or self.started)


async def ack_and_finish(
    conn: AsyncConnection[Any], schema: str, acks: Mapping[str, list[Any]]
) -> list[dict[str, Any]]:
    """Ack jobs (``acks``: the arrays of ``finish_steps``' ack, built by :mod:`.acks`) and
    take the first round of :func:`propagate` for the steps they finished, in one
    statement on ``conn``. Returns its rows: kind 'acked' for the jobs acked, the others
    for :func:`after_ack` to go on from."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q.finish_steps.at(schema), {**acks, **_finish_params(())})
    return await cur.fetchall()


async def after_ack(tx: AckTransaction, acked: Sequence[AckedJob]) -> None:
    """The ack follow-up: the ack statement took the first round (:func:`ack_and_finish`);
    this goes on from what it returned (see the module docstring)."""
    rows = []
    for row in tx.workflow_rows:
        if row["kind"] == "malformed":  # the statement's rule, not one of ours beside it
            logger.warning("job %s has a malformed meta.workflow_id; not a step", row["job_id"])
        else:
            rows.append(row)
    if not rows:
        return
    progress = await propagate(tx.conn, tx.schema, (), wake=tx.wake, first=rows)
    if progress.released or progress.cancelled or progress.workflows_finished:
        tx.after_commit(lambda: progress.emit("ack"))


async def propagate(
    conn: AsyncConnection[Any],
    schema: str,
    finishes: Sequence[Finish],
    *,
    wake: Wake,
    first: Sequence[dict[str, Any]] | None = None,
) -> Progress:
    """Record ``finishes`` and everything they imply, on ``conn`` (inside the caller's
    transaction). ``wake(queue)`` is called for every queue a job was released into.
    ``first``: the rows of a ``finish_steps`` already run (by the ack), in place of
    running it for ``finishes``."""
    cur = conn.cursor(row_factory=dict_row)
    progress = Progress()
    rows = list(first) if first is not None else await _finish(cur, schema, finishes)
    while rows:
        finished = [r for r in rows if r["kind"] == "step"]
        if not finished:
            break
        progress.finished.extend((r["workflow_id"], r["name"], r["outcome"]) for r in finished)
        after: list[Finish] = []
        for w in rows:
            if w["kind"] != "workflow" or not w["finished"]:
                continue
            progress.workflows_finished.append((w["workflow_id"], w["outcome"]))
            if w["parent_workflow_id"] is not None:
                after.append(Finish(w["parent_workflow_id"], w["parent_step"], w["outcome"]))
        taken_down = [r for r in finished if r["cancelled_by"] is not None]
        if taken_down:
            await _take_down(cur, schema, taken_down, after, progress)
        dependents = [r for r in rows if r["kind"] == "dependent"]
        stale = {r["workflow_id"] for r in rows if r["kind"] == "workflow" and not r["fresh"]}
        if stale:  # appended to meanwhile: its edges are read again (module docstring)
            again = [r for r in finished if r["workflow_id"] in stale]
            await cur.execute(
                Q.satisfy_dependents.at(schema),
                {
                    "workflow_ids": [r["workflow_id"] for r in again],
                    "names": [r["name"] for r in again],
                    "outcomes": [r["outcome"] for r in again],
                },
            )
            dependents.extend(await cur.fetchall())
        starting: list[dict[str, Any]] = []
        for d in dependents:
            if d["fatal_dep"] is not None:
                reason = f"workflow dependency {d['fatal_dep']}"
                after.append(Finish(d["workflow_id"], d["name"], "cancelled", reason))
            elif d["released_id"] is not None:
                progress.released.append(d["released_id"])
                if d["released_state"] == "available":
                    wake(d["released_queue"])
            elif d["pending"] == 0 and d["sub_workflow_id"] is not None:
                starting.append(d)
        if starting:
            await release_ready(cur, schema, starting, wake=wake, progress=progress)
        rows = await _finish(cur, schema, after)
    return progress


async def _finish(cur: Any, schema: str, finishes: Sequence[Finish]) -> list[dict[str, Any]]:
    if not finishes:
        return []
    await cur.execute(Q.finish_steps.at(schema), {**NO_ACKS, **_finish_params(finishes)})
    rows: list[dict[str, Any]] = await cur.fetchall()
    return rows


async def _take_down(
    cur: Any,
    schema: str,
    rows: Sequence[dict[str, Any]],
    after: list[Finish],
    progress: Progress,
) -> None:
    """Cancel the jobs of steps taken down by a dependency; a sub-workflow step taken
    down takes every unfinished step of its sub-workflow with it."""
    jobs = [(r["job_id"], r["cancelled_by"]) for r in rows if r["job_id"] is not None]
    if jobs:
        await cur.execute(
            Q.cancel_jobs.at(schema),
            {"ids": [j for j, _ in jobs], "reasons": [reason for _, reason in jobs]},
        )
        progress.cancelled.extend(row["id"] for row in await cur.fetchall())
    subs = {r["sub_workflow_id"]: r for r in rows if r["sub_workflow_id"] is not None}
    if subs:
        await cur.execute(Q.unfinished_steps.at(schema), {"ids": list(subs)})
        for step in await cur.fetchall():
            parent = subs[step["workflow_id"]]
            reason = f"parent step {parent['name']} cancelled: {parent['cancelled_by']}"
            after.append(Finish(step["workflow_id"], step["name"], "cancelled", reason))


async def release_ready(
    cur: Any,
    schema: str,
    ready: Sequence[dict[str, Any]],
    *,
    wake: Wake,
    progress: Progress,
) -> None:
    """Release steps with nothing pending (rows with ``job_id`` / ``sub_workflow_id``):
    jobs leave 'suspended', sub-workflows start (and their ready steps are released)."""
    jobs = [r["job_id"] for r in ready if r["job_id"] is not None]
    subs = [r["sub_workflow_id"] for r in ready if r["sub_workflow_id"] is not None]
    while jobs or subs:
        if jobs:
            await cur.execute(Q.release_jobs.at(schema), {"ids": jobs})
            for row in await cur.fetchall():
                progress.released.append(row["id"])
                if row["state"] == "available":
                    wake(row["queue"])
        jobs = []
        if subs:
            await cur.execute(Q.start_workflows.at(schema), {"ids": subs})
            progress.started.extend(subs)
            rows = await cur.fetchall()
            jobs = [r["job_id"] for r in rows if r["job_id"] is not None]
            subs = [r["sub_workflow_id"] for r in rows if r["sub_workflow_id"] is not None]


# finish_steps acking nothing.
NO_ACKS: Mapping[str, list[Any]] = {
    key: []
    for key in ("ids", "attempted_at", "states", "attempt_change", "schedule_in", "errors", "meta")
}


def _finish_params(finishes: Sequence[Finish]) -> dict[str, list[Any]]:
    return {
        "workflow_ids": [f.workflow_id for f in finishes],
        "names": [f.name for f in finishes],
        "outcomes": [f.outcome for f in finishes],
        "cancelled_by": [f.cancelled_by for f in finishes],
    }
