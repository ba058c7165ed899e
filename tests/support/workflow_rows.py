"""Workflows written straight into a migrated database, in the shape of migration 0009.

The pages, the explainer, forensics and the actions read these rows as they read a
running system's: one ``powertools_workflows`` row (counters kept as the ack path keeps
them), a step row per step with its ``pending`` count and outcome, an edge per
dependency, and a real ``oban_jobs`` row per job step carrying ``meta.workflow_id`` and
``meta.workflow_step``. Works from an async (pages) or a sync (browser) connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

FINISHED = {"completed", "cancelled", "discarded"}


@dataclass
class StepSpec:
    deps: Sequence[str] = ()
    # The job's state; a step's outcome follows from it (a finished job: its step
    # finished the same way) unless ``outcome`` says otherwise (e.g. None for a missed
    # record).
    state: str = "suspended"
    outcome: str | None | bool = True  # True: from the state
    cancelled_by: str | None = None
    pending: int | None = None  # None: the deps not completed
    worker: str = "app.Step"
    args: dict[str, Any] = field(default_factory=dict)
    attempt: int | None = None
    sub_workflow: str | None = None  # a sub-workflow step: the sub-workflow's id


@dataclass(frozen=True)
class Built:
    id: str
    jobs: dict[str, int]  # step name -> job id


INSERT_WORKFLOW = """
INSERT INTO powertools_workflows (id, name, parent_workflow_id, parent_step, state,
    steps_total, steps_completed, steps_cancelled, steps_discarded, started_at, finished_at)
VALUES (%(id)s, %(name)s, %(parent)s, %(parent_step)s, %(state)s, %(total)s, %(completed)s,
        %(cancelled)s, %(discarded)s, now(),
        CASE WHEN %(state)s IN ('completed', 'cancelled', 'discarded') THEN now() END)
"""
INSERT_JOB = """
INSERT INTO oban_jobs (state, queue, worker, args, meta, attempt, max_attempts, attempted_at,
                       completed_at, cancelled_at, discarded_at)
VALUES (%(state)s::oban_job_state, 'default', %(worker)s, %(args)s, %(meta)s, %(attempt)s, 3,
        CASE WHEN %(attempt)s > 0 THEN timezone('UTC', now()) END,
        CASE WHEN %(state)s = 'completed' THEN timezone('UTC', now()) END,
        CASE WHEN %(state)s = 'cancelled' THEN timezone('UTC', now()) END,
        CASE WHEN %(state)s = 'discarded' THEN timezone('UTC', now()) END)
RETURNING id
"""
INSERT_STEP = """
INSERT INTO powertools_workflow_steps (workflow_id, name, job_id, sub_workflow_id, deps,
    pending, outcome, cancelled_by, finished_at)
VALUES (%(wf)s, %(name)s, %(job)s, %(sub)s, %(deps)s, %(pending)s, %(outcome)s,
        %(cancelled_by)s, CASE WHEN %(outcome)s::text IS NOT NULL THEN now() END)
"""
INSERT_EDGE = """
INSERT INTO powertools_workflow_edges (workflow_id, upstream, downstream)
VALUES (%(wf)s, %(up)s, %(down)s)
"""


def _outcome(spec: StepSpec) -> str | None:
    if spec.outcome is True:
        return spec.state if spec.state in FINISHED else None
    return spec.outcome if isinstance(spec.outcome, str) else None


async def build(
    conn: Any,
    name: str,
    steps: Mapping[str, StepSpec],
    *,
    state: str | None = None,
    parent: tuple[str, str] | None = None,
    workflow_id: str | None = None,
) -> Built:
    """Write a workflow; its state defaults to what its steps' outcomes make it."""
    wid = workflow_id or str(uuid.uuid4())
    outcomes = {n: _outcome(s) for n, s in steps.items()}
    counts = {o: sum(1 for v in outcomes.values() if v == o) for o in FINISHED}
    if state is None:
        if sum(counts.values()) < len(steps):
            state = "executing"
        elif counts["discarded"]:
            state = "discarded"
        elif counts["cancelled"]:
            state = "cancelled"
        else:
            state = "completed"
    await conn.execute(
        INSERT_WORKFLOW,
        {
            "id": wid,
            "name": name,
            "parent": parent[0] if parent else None,
            "parent_step": parent[1] if parent else None,
            "state": state,
            "total": len(steps),
            **counts,
        },
    )
    jobs: dict[str, int] = {}
    for step, spec in steps.items():
        job_id = None
        if spec.sub_workflow is None:
            attempt = spec.attempt
            if attempt is None:
                attempt = 0 if spec.state in ("suspended", "available", "cancelled") else 1
            cur = await conn.execute(
                INSERT_JOB,
                {
                    "state": spec.state,
                    "worker": spec.worker,
                    "args": Jsonb(spec.args),
                    "meta": Jsonb({"workflow_id": wid, "workflow_step": step}),
                    "attempt": attempt,
                },
            )
            row = await cur.fetchone()
            job_id = int(row["id"] if isinstance(row, Mapping) else row[0])
            jobs[step] = job_id
        pending = spec.pending
        if pending is None:
            pending = sum(1 for d in spec.deps if outcomes.get(d) != "completed")
        await conn.execute(
            INSERT_STEP,
            {
                "wf": wid,
                "name": step,
                "job": job_id,
                "sub": spec.sub_workflow,
                "deps": list(spec.deps),
                "pending": pending,
                "outcome": outcomes[step],
                "cancelled_by": spec.cancelled_by,
            },
        )
    for step, spec in steps.items():
        for dep in spec.deps:
            await conn.execute(INSERT_EDGE, {"wf": wid, "up": dep, "down": step})
    return Built(wid, jobs)


def diamond(**states: str) -> dict[str, StepSpec]:
    """a -> (b, c) -> d, each step's job in the state given (default: as it would be
    right after enqueue: a available, the rest suspended)."""
    shape = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    default = {"a": "available"}
    return {
        n: StepSpec(deps=deps, state=states.get(n, default.get(n, "suspended")))
        for n, deps in shape.items()
    }


async def attach(conn: Any, parent: str, step: str, sub: str) -> None:
    """Make ``step`` of ``parent`` stand for the sub-workflow ``sub`` (built after it)."""
    await conn.execute(
        "UPDATE powertools_workflow_steps SET sub_workflow_id = %(sub)s, job_id = NULL"
        " WHERE workflow_id = %(wf)s AND name = %(step)s",
        {"sub": sub, "wf": parent, "step": step},
    )
    await conn.execute(
        "DELETE FROM oban_jobs WHERE meta->>'workflow_id' = %(wf)s AND meta->>'workflow_step' = %(step)s",
        {"wf": parent, "step": step},
    )
