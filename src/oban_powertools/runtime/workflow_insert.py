"""Inserting workflows (the ``query.insert_jobs`` hook, for a batch holding step jobs).

A batch that holds the jobs of one or more workflows (``job.extra["workflow"]``, set by
:meth:`Workflow.jobs <oban_powertools.workflows.Workflow.jobs>`) is written in ONE
transaction, one statement per table whatever the number of steps (arrays, unnest):
the workflow rows, the jobs (the batch's plain jobs too, ids drawn first), the steps
and the edges. Steps with nothing pending in a started workflow are inserted
``available`` (their queues are woken), every other step ``suspended``. With ``conn=``
it all runs in the caller's transaction (a savepoint in it): a rollback leaves nothing.

Appended steps (:meth:`Workflow.appending_to`) first lock their workflow's row, the
row every ack of one of its steps locks, and grow its ``steps_total`` before commit, so a
dependency finishing meanwhile is either seen finished here or, its ack seeing the
grown row, reads the new edges (see :mod:`.workflow_release`). A dependency
already completed (or finished in a way the step ignores) counts as satisfied; one
that takes the step down cancels it at insert, through the same propagation as an ack.

A batch that holds only part of a workflow's jobs, or a unique job beside workflow
steps, is refused (nothing is inserted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from oban.job import Job, JobState
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..db.queries import StatementsInSchema
from ..errors import (
    WorkflowDuplicateStep,
    WorkflowError,
    WorkflowFinished,
    WorkflowNotFound,
    WorkflowUnknownDependency,
)
from ..workflows.plan import EXTRA_KEY, PlannedStep, WorkflowPlan
from .job_rows import job_columns, take_row
from .workflow_release import FINISHED_STATES, Finish, Progress, propagate

__all__ = ["insert_jobs", "plan_of"]

Q = StatementsInSchema(
    workflows=(
        "insert_jobs insert_workflows insert_steps insert_edges lock_workflow existing_steps"
        " grow_workflow"
    ),
    acks="wake_queues",
)

INSERTED_MARK = "workflow_inserted"


def plan_of(job: Job) -> WorkflowPlan | None:
    plan = (job.extra or {}).get(EXTRA_KEY)
    return plan if isinstance(plan, WorkflowPlan) else None


def _plans(jobs: Sequence[Job]) -> list[WorkflowPlan]:
    plans: dict[int, WorkflowPlan] = {}
    in_batch = {id(job) for job in jobs}
    for job in jobs:
        plan = plan_of(job)
        if plan is not None and id(plan) not in plans:
            plans[id(plan)] = plan
    for plan in plans.values():
        missing = [j for j in plan.jobs() if id(j) not in in_batch]
        if missing:
            raise WorkflowError(
                f"workflow {plan.name!r}: the batch holds {len(plan.jobs()) - len(missing)} of "
                f"its {len(plan.jobs())} step jobs; enqueue them together "
                "(oban.enqueue_many(*workflow.jobs()))"
            )
    if any((job.extra or {}).get("unique") is not None for job in jobs):
        raise WorkflowError(
            "a batch holding workflow steps cannot also hold unique jobs; enqueue the "
            "unique jobs in their own batch"
        )
    return list(plans.values())


async def insert_jobs(
    jobs: Sequence[Job],
    *,
    prefix: str,
    pool: Any,
    conn: AsyncConnection[Any] | AsyncCursor[Any] | None = None,
) -> list[Job]:
    """Insert a batch holding workflow steps (see the module docstring); returns the
    jobs in input order, updated in place as oban's insert does."""
    plans = _plans(jobs)
    if conn is not None:
        connection = conn.connection if isinstance(conn, AsyncCursor) else conn
        async with connection.transaction():
            progress = await _insert(connection, jobs, plans, prefix)
    else:
        async with pool.connection() as pooled, pooled.transaction():
            progress = await _insert(pooled, jobs, plans, prefix)
    if progress:
        progress.emit("insert")
    return list(jobs)


class _Decided:
    """How each planned step is inserted: its pending count and job state."""

    def __init__(self) -> None:
        self.pending: dict[tuple[UUID, str], int] = {}
        self.released: set[tuple[UUID, str]] = set()
        self.fatal: list[Finish] = []


async def _insert(
    conn: AsyncConnection[Any], jobs: Sequence[Job], plans: Sequence[WorkflowPlan], prefix: str
) -> Progress:
    cur = conn.cursor(row_factory=dict_row)
    decided = _Decided()
    grown: list[tuple[UUID, int]] = []
    started: dict[UUID, bool] = {}
    for plan in plans:
        if plan.appending:
            started[plan.root] = await _append_checks(cur, plan, decided, prefix)
            grown.append((plan.root, sum(1 for s in plan.steps if s.workflow_id == plan.root)))
        else:
            started[plan.root] = True
        # A parent's step comes before its sub-workflow's steps in the plan: a
        # sub-workflow starts at insert exactly when its parent step is released.
        for step in plan.steps:
            key = (step.workflow_id, step.name)
            pending = decided.pending.setdefault(key, step.pending)
            if pending == 0 and started.get(step.workflow_id, False):
                decided.released.add(key)
            if step.sub_workflow_id is not None:
                started[step.sub_workflow_id] = key in decided.released
    new_workflows = [w for plan in plans for w in plan.workflows]
    if new_workflows:
        await cur.execute(
            Q.insert_workflows.at(prefix),
            {
                "ids": [w.id for w in new_workflows],
                "names": [w.name for w in new_workflows],
                "parent_ids": [w.parent_id for w in new_workflows],
                "parent_steps": [w.parent_step for w in new_workflows],
                "states": ["executing" if started[w.id] else "pending" for w in new_workflows],
                "steps_total": [w.steps_total for w in new_workflows],
                "on_cancelled": [w.on_dep_cancelled for w in new_workflows],
                "on_discarded": [w.on_dep_discarded for w in new_workflows],
            },
        )
    step_of = {id(s.job): s for plan in plans for s in plan.steps if s.job is not None}
    for job in jobs:
        planned = step_of.get(id(job))
        if planned is not None:
            released = (planned.workflow_id, planned.name) in decided.released
            job.state = JobState.AVAILABLE if released else JobState.SUSPENDED
    await cur.execute(Q.insert_jobs.at(prefix), job_columns(jobs, prefix))
    for row in await cur.fetchall():
        job = jobs[row["ord"] - 1]
        take_row(job, row)
        if id(job) in step_of:
            job.extra = {**job.extra, INSERTED_MARK: True}
    steps = [s for plan in plans for s in plan.steps]
    await cur.execute(Q.insert_steps.at(prefix), _step_columns(steps, decided))
    edges = [edge for plan in plans for edge in plan.edges()]
    if edges:
        await cur.execute(
            Q.insert_edges.at(prefix),
            {
                "workflow_ids": [w for w, _, _ in edges],
                "upstreams": [u for _, u, _ in edges],
                "downstreams": [d for _, _, d in edges],
            },
        )
    for workflow_id, added in grown:
        await cur.execute(
            Q.grow_workflow.at(prefix), {"id": workflow_id, "added": added, "cancelled": 0}
        )
    if not decided.fatal:
        return Progress()
    woken: set[str] = set()
    progress = await propagate(conn, prefix, decided.fatal, wake=woken.add)
    if woken:
        await cur.execute(
            Q.wake_queues.at(prefix), {"channel": f"{prefix}.oban_insert", "queues": sorted(woken)}
        )
    return progress


async def _append_checks(cur: Any, plan: WorkflowPlan, decided: _Decided, prefix: str) -> bool:
    """Lock the workflow appended to and settle each appended step's dependencies on its
    existing steps; returns whether the workflow has started."""
    await cur.execute(Q.lock_workflow.at(prefix), {"id": plan.root})
    row = await cur.fetchone()
    if row is None:
        raise WorkflowNotFound(f"there is no workflow {plan.root} to append steps to")
    if row["state"] in FINISHED_STATES:
        raise WorkflowFinished(
            f"workflow {row['name']!r} ({plan.root}) has already finished "
            f"({row['state']}); its steps cannot be added to"
        )
    mine = [s for s in plan.steps if s.workflow_id == plan.root]
    external = sorted({d for s in mine for d in s.external_deps})
    await cur.execute(
        Q.existing_steps.at(prefix),
        {"id": plan.root, "names": [s.name for s in mine] + external},
    )
    existing = {r["name"]: r["outcome"] for r in await cur.fetchall()}
    for step in mine:
        if step.name in existing:
            raise WorkflowDuplicateStep(row["name"], step.name)
    for step in mine:
        pending = step.pending
        fatal: str | None = None
        for dep in step.external_deps:
            if dep not in existing:
                raise WorkflowUnknownDependency(row["name"], step.name, dep)
            outcome = existing[dep]
            if outcome is None:
                continue
            if _satisfies(step, outcome):
                pending -= 1
            elif fatal is None:
                fatal = f"{dep} {outcome}"
        decided.pending[(step.workflow_id, step.name)] = pending
        if fatal is not None:
            reason = f"workflow dependency {fatal}"
            decided.fatal.append(Finish(step.workflow_id, step.name, "cancelled", reason))
            decided.pending[(step.workflow_id, step.name)] = max(pending, 1)  # never released
    return bool(row["state"] == "executing")


def _satisfies(step: PlannedStep, outcome: str) -> bool:
    if outcome == "completed":
        return True
    policy = step.on_dep_cancelled if outcome == "cancelled" else step.on_dep_discarded
    return policy == "ignore"


def _step_columns(steps: Sequence[PlannedStep], decided: _Decided) -> dict[str, Any]:
    return {
        "workflow_ids": [s.workflow_id for s in steps],
        "names": [s.name for s in steps],
        "job_ids": [None if s.job is None else s.job.id for s in steps],
        "sub_workflow_ids": [s.sub_workflow_id for s in steps],
        "deps": [Jsonb(list(s.deps)) for s in steps],
        "pending": [decided.pending[(s.workflow_id, s.name)] for s in steps],
        "on_cancelled": [s.on_dep_cancelled for s in steps],
        "on_discarded": [s.on_dep_discarded for s in steps],
        "outcomes": [None for _ in steps],
        "cancelled_by": [None for _ in steps],
    }
