"""Workflow actions: ``cancel_workflow`` and ``retry_workflow``, previewed with the exact
set of jobs they touch.

The target is one workflow (its id). A preview's snapshot holds the workflow (and, for a
cancel, its sub-workflows) and every job the action changes, with its step and the state
it goes to; the drift key is all of their states, so a job that moved between preview
and confirm (a step finished, another was released) makes the confirm ``drifted`` and
nothing changes. The confirm runs in the pipeline's transaction: it locks the jobs,
then the steps, then the workflows, in the order the ack path takes them, reads the
snapshot again, compares, and changes jobs, steps and counters together with the audit
event (see ``db/queries/workflow_actions.sql``).

Sub-workflows are cancelled with their root; cancelling a sub-workflow on its own, and
retrying a sub-workflow or a step that stands for one, are refused with the reason: the
parent step a sub-workflow stands for is recorded by the release path, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, LiteralString
from uuid import UUID

from ..db import Conn, oban_jobs
from ..db.queries import Statements
from .base import Action, ApplyContext, Params, Snapshot, Snapshots, register
from .errors import InvalidTargets

Q = Statements(
    workflow_actions=(
        "cancel_plan cancel_plan_for_update workflow_tree lock_tree_steps lock_tree cancel_tree"
        " retry_plan lock_retry_jobs retry_workflow"
    ),
)

FINISHED = frozenset({"completed", "cancelled", "discarded"})
# How many job ids the effect names one by one (the preview lists them all).
EFFECT_IDS = 20


def _ids(jobs: Sequence[Mapping[str, Any]]) -> str:
    ids = [str(j["id"]) for j in jobs]
    shown = ", ".join(ids[:EFFECT_IDS])
    return shown + (f" and {len(ids) - EFFECT_IDS} more" if len(ids) > EFFECT_IDS else "")


def _workflow(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "state": row["state"],
        "parent_workflow_id": str(row["parent_workflow_id"]) if row["parent_workflow_id"] else None,
        "steps_total": row["steps_total"],
        "steps_completed": row["steps_completed"],
        "steps_cancelled": row["steps_cancelled"],
        "steps_discarded": row["steps_discarded"],
    }


async def _read(
    conn: Conn, target: str, plan: LiteralString, lock_jobs: LiteralString | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The workflow ``target`` and its sub-workflows (the root first; empty when there is no
    such workflow), and the rows of ``plan``, the statement saying what the action touches.
    With ``lock_jobs``, the statement locking the jobs the action changes, those jobs, then
    the steps, then the workflows are locked first: the ack path's order."""
    if lock_jobs is not None:
        await conn.execute(lock_jobs, {"id": target})
        await conn.execute(Q.lock_tree_steps, {"id": target})
        await conn.execute(Q.lock_tree, {"id": target})
    cur = await conn.execute(Q.workflow_tree, {"id": target})
    tree = [_workflow(r) for r in await cur.fetchall()]
    if not tree:
        return [], []
    cur = await conn.execute(plan, {"id": target})
    return tree, list(await cur.fetchall())


class WorkflowAction(Action):
    resource_type = "workflow"

    def parse_target(self, raw: str) -> str:
        text = raw.strip()
        try:
            if len(text) != 36:
                raise ValueError(text)
            return str(UUID(text))
        except ValueError:
            raise InvalidTargets(f"{raw[:40]!r} is not a workflow id (a UUID)") from None

    def drift_key(self, snapshot: Snapshot) -> Any:
        workflows = [f"{w['id']}:{w['state']}" for w in snapshot.get("workflows", [])]
        jobs = [f"{j['id']}:{j['state']}:{j['attempt']}" for j in snapshot["jobs"]]
        steps = [f"{s['step']}:{s['outcome']}" for s in snapshot.get("steps", [])]
        return [snapshot["workflow"]["state"], *workflows, *jobs, *steps]


@register
class CancelWorkflow(WorkflowAction):
    name = "cancel_workflow"
    event = "workflow.cancelled"
    label = "Cancel workflow"
    destructive = True

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        (target,) = targets
        tree, plan = await _read(
            conn, target, Q.cancel_plan, Q.cancel_plan_for_update if lock else None
        )
        if not tree:
            return {}
        jobs = [
            {
                "id": r["job_id"],
                "step": r["step"],
                "workflow_id": str(r["workflow_id"]),
                "state": r["state"],
                "attempt": r["attempt"],
                "to": "asked to stop" if r["state"] == "executing" else "cancelled",
            }
            for r in plan
        ]
        return {
            target: {
                "workflow": tree[0],
                "workflows": [{"id": w["id"], "state": w["state"]} for w in tree[1:]],
                "jobs": jobs,
            }
        }

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        workflow = snapshot["workflow"]
        if workflow["parent_workflow_id"]:
            return (
                "a sub-workflow is cancelled with its parent workflow "
                f"{workflow['parent_workflow_id']}: cancel that one"
            )
        if workflow["state"] in FINISHED:
            return f"a {workflow['state']} workflow cannot be cancelled"
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (snap,) = snapshots.values()
        jobs = snap["jobs"]
        subs = len(snap["workflows"])
        running = [j for j in jobs if j["state"] == "executing"]
        whole = "this workflow" + (
            f" and its {subs} sub-workflow{'s' if subs != 1 else ''}" if subs else ""
        )
        if not jobs:
            return f"Marks {whole} cancelled; no step's job is waiting or running."
        text = (
            f"Cancels {whole}: exactly these {len(jobs)} job{'s' if len(jobs) != 1 else ''} "
            f"are cancelled ({_ids(jobs)}), their steps recorded as cancelled, and the "
            "workflow ends cancelled."
        )
        if running:
            text += (
                f" {len(running)} running job{'s are' if len(running) != 1 else ' is'} asked "
                "to stop (the worker must check for cancellation); the step is recorded when "
                "it stops."
            )
        return text

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        (target,) = snapshots
        snap = snapshots[target]
        ids = [int(j["id"]) for j in snap["jobs"]]
        changed = await oban_jobs.cancel_jobs(conn, ctx.prefix, ids) if ids else {}
        cancelled = [i for i, row in changed.items() if row["state"] == "cancelled"]
        cur = await conn.execute(Q.cancel_tree, {"id": target, "cancelled": cancelled})
        tree = {str(r["id"]): r for r in await cur.fetchall()}
        root = tree[target]
        return {
            target: {
                "state": root["state"],
                "steps_cancelled": root["steps_cancelled"],
                "jobs": [{"id": i, "state": row["state"]} for i, row in sorted(changed.items())],
                "workflows": [
                    {"id": w, "state": r["state"]} for w, r in tree.items() if w != target
                ],
            }
        }


@register
class RetryWorkflow(WorkflowAction):
    name = "retry_workflow"
    event = "workflow.retried"
    label = "Retry workflow"

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        (target,) = targets
        tree, steps = await _read(conn, target, Q.retry_plan, Q.lock_retry_jobs if lock else None)
        if not tree:
            return {}
        return {
            target: {
                "workflow": tree[0],
                "steps": [
                    {
                        "step": s["step"],
                        "outcome": s["outcome"],
                        "cancelled_by": s["cancelled_by"],
                        "sub_workflow_id": str(s["sub_workflow_id"])
                        if s["sub_workflow_id"]
                        else None,
                    }
                    for s in steps
                ],
                "jobs": [
                    {
                        "id": s["job_id"],
                        "step": s["step"],
                        "workflow_id": target,
                        "state": s["state"],
                        "attempt": s["attempt"],
                        "to": "available" if s["pending"] == 0 else "suspended",
                    }
                    for s in steps
                    if s["job_id"] is not None and s["state"] is not None
                ],
            }
        }

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        workflow = snapshot["workflow"]
        if workflow["parent_workflow_id"]:
            return (
                "a sub-workflow cannot be retried on its own: the step of its parent "
                "workflow that stands for it would stay finished"
            )
        if workflow["state"] == "pending":
            return "a pending workflow has not started: there is nothing to retry"
        if not snapshot["steps"]:
            return (
                f"nothing to retry: no step of this {workflow['state']} workflow was cancelled "
                "or discarded"
            )
        subs = [s["step"] for s in snapshot["steps"] if s["sub_workflow_id"]]
        if subs:
            return (
                f"{len(subs)} failed step(s) stand for sub-workflows, which cannot be retried "
                "yet; nothing was changed"
            )
        if len(snapshot["jobs"]) != len(snapshot["steps"]):
            return "a failed step's job is gone (pruned): the workflow cannot be retried whole"
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (snap,) = snapshots.values()
        jobs = snap["jobs"]
        now = [j for j in jobs if j["to"] == "available"]
        later = [j for j in jobs if j["to"] != "available"]
        text = (
            f"Retries this workflow's {len(jobs)} cancelled or discarded "
            f"step{'s' if len(jobs) != 1 else ''}: exactly these jobs change."
        )
        if now:
            text += f" {_ids(now)} run again now (one more attempt where exhausted)."
        if later:
            text += f" {_ids(later)} wait again (suspended) until their dependencies complete."
        return (
            text + " Dependents that still wait count the retried steps again, and the "
            "workflow executes again with its counters taken back."
        )

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        (target,) = snapshots
        cur = await conn.execute(Q.retry_workflow, {"id": target})
        row = await cur.fetchone()
        assert row is not None
        jobs = list(row["jobs"])
        for queue in sorted({j["queue"] for j in jobs if j["state"] == "available"}):
            await oban_jobs.notify(conn, ctx.prefix, "insert", {"queue": queue})
        return {target: {**dict(row["workflow"]), "jobs": jobs, "steps_reset": row["steps"]}}
