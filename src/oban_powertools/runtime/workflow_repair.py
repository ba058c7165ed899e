"""The leader's periodic repair of workflows whose release was missed.

Steps are released in the transaction that acks their dependencies (:mod:`.acks`). A
few paths move a step's job without that hook: oban's own ``cancel_job`` / ``retry_job``
and delete, plain SQL, the lifeline discarding a job whose attempts are used up. Every
``interval`` seconds, on the node that is oban's leader only, :class:`WorkflowRepair`
looks for

* steps whose job finished (or is gone) without the step being recorded: they are
  finished now, with everything that follows (dependents released or cancelled,
  counters, sub-workflows), exactly as the ack would have done;
* steps still waiting (job ``suspended``, sub-workflow ``pending``) in a running
  workflow although every dependency has finished: released, or cancelled when a
  dependency should have taken them down.

Both reads go through the partial index of unfinished steps and stop at ``batch`` rows,
so a pass costs little when there is nothing to repair. What is found is re-read after
the workflows' rows are locked (the lock every ack takes), so a step an ack is finishing
at that moment is not repaired too. Each repaired workflow gets one audit event
(``workflow.repaired``, by the system principal, through the one audit writer) in the
repair's transaction, and the pass emits ``oban_powertools.workflow.repaired``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from .. import telemetry
from ..audit import write_event
from ..db import Database
from ..db.queries import StatementsInSchema
from ..seams import SYSTEM_PRINCIPAL
from .clock import LeaderLike
from .loop import LeaderPassLoop
from .workflow_release import Finish, Progress, propagate, release_ready

__all__ = ["REPAIRED_EVENT", "RepairResult", "WorkflowRepair"]

logger = logging.getLogger(__name__)

Q = StatementsInSchema(
    workflows="repair_finished repair_waiting lock_workflows set_pending",
    acks="wake_queues",
)

REPAIRED = telemetry.declare(
    "oban_powertools.workflow.repaired",
    measurements=(
        "workflows",
        "steps_finished",
        "steps_released",
        "steps_cancelled",
        "jobs_released",
    ),
    metadata=("node", "workflow_ids"),
)
REPAIRED_EVENT = REPAIRED.name


@dataclass(slots=True)
class RepairResult:
    """What one pass repaired, per workflow: the steps it finished (from their job's
    state) and the steps it released or cancelled."""

    finished: dict[UUID, list[str]] = field(default_factory=dict)
    released: dict[UUID, list[str]] = field(default_factory=dict)
    cancelled: dict[UUID, list[str]] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)

    @property
    def workflows(self) -> list[UUID]:
        return sorted({*self.finished, *self.released, *self.cancelled}, key=str)

    def emit(self, node: str) -> None:
        """Report this pass as the ``workflow.repaired`` event."""
        telemetry.emit(
            REPAIRED,
            {
                "workflows": len(self.workflows),
                "steps_finished": sum(len(v) for v in self.finished.values()),
                "steps_released": sum(len(v) for v in self.released.values()),
                "steps_cancelled": sum(len(v) for v in self.cancelled.values()),
                "jobs_released": len(self.progress.released),
            },
            {"node": node, "workflow_ids": [str(w) for w in self.workflows]},
        )

    def __bool__(self) -> bool:
        return bool(self.workflows)


class WorkflowRepair(LeaderPassLoop):
    """The repair loop of one node (acting only while it leads). See the module docstring."""

    label = "workflow repair"
    task_name = "oban-powertools-workflow-repair"

    def __init__(
        self,
        database: Database,
        *,
        leader: LeaderLike,
        node: str,
        prefix: str,
        interval: float = 5.0,
        batch: int = 500,
    ) -> None:
        super().__init__(leader=leader, node=node, interval=interval)
        self.database = database
        self.prefix = prefix
        self.batch = batch
        self.last: RepairResult | None = None

    async def _pass(self) -> None:
        self.last = await self.repair()

    async def _find(self, cur: Any, ids: list[UUID] | None) -> tuple[list[Any], list[Any]]:
        params = {"ids": ids, "limit": self.batch}
        await cur.execute(Q.repair_finished.at(self.prefix), params)
        finished = list(await cur.fetchall())
        await cur.execute(Q.repair_waiting.at(self.prefix), params)
        waiting = list(await cur.fetchall())
        return finished, waiting

    async def repair(self) -> RepairResult:
        """One pass (whatever the leadership: tools and tests may call it)."""
        result = RepairResult()
        woken: set[str] = set()
        async with self.database.transaction() as conn:
            cur = conn.cursor(row_factory=dict_row)
            finished, waiting = await self._find(cur, None)
            if not finished and not waiting:
                return result
            ids = sorted({r["workflow_id"] for r in [*finished, *waiting]})
            await cur.execute(Q.lock_workflows.at(self.prefix), {"ids": ids})
            finished, waiting = await self._find(cur, ids)  # under the locks
            finishes: list[Finish] = []
            for r in finished:
                reason = "workflow step's job is gone" if r["job_missing"] else None
                finishes.append(Finish(r["workflow_id"], r["name"], r["outcome"], reason))
                result.finished.setdefault(r["workflow_id"], []).append(r["name"])
            ready: list[dict[str, Any]] = []
            for r in waiting:
                if r["fatal_dep"] is not None:
                    reason = f"workflow dependency {r['fatal_dep']}"
                    finishes.append(Finish(r["workflow_id"], r["name"], "cancelled", reason))
                    result.cancelled.setdefault(r["workflow_id"], []).append(r["name"])
                elif r["unsatisfied"] == 0:
                    ready.append(r)
                    result.released.setdefault(r["workflow_id"], []).append(r["name"])
            if ready:
                await cur.execute(
                    Q.set_pending.at(self.prefix),
                    {
                        "workflow_ids": [r["workflow_id"] for r in ready],
                        "names": [r["name"] for r in ready],
                        "pending": [0 for _ in ready],
                    },
                )
                await release_ready(
                    cur, self.prefix, ready, wake=woken.add, progress=result.progress
                )
            if finishes:
                more = await propagate(conn, self.prefix, finishes, wake=woken.add)
                result.progress.released.extend(more.released)
                result.progress.cancelled.extend(more.cancelled)
            if woken:
                await cur.execute(
                    Q.wake_queues.at(self.prefix),
                    {"channel": f"{self.prefix}.oban_insert", "queues": sorted(woken)},
                )
            for workflow_id in result.workflows:
                await write_event(
                    conn,
                    action="workflow.repaired",
                    command="repair_workflow",
                    resource_type="workflow",
                    resource_id=str(workflow_id),
                    principal=SYSTEM_PRINCIPAL,
                    surface="system",
                    outcome="succeeded",
                    reason="a release was missed (a path around the ack hook)",
                    detail={
                        "steps_finished": sorted(result.finished.get(workflow_id, [])),
                        "steps_released": sorted(result.released.get(workflow_id, [])),
                        "steps_cancelled": sorted(result.cancelled.get(workflow_id, [])),
                        "repaired_by_node": self.node,
                    },
                )
        if result:
            logger.info(
                "workflow repair on %s: %d workflow(s) repaired", self.node, len(result.workflows)
            )
            result.emit(self.node)
        return result
