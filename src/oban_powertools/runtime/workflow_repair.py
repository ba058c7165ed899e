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

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from oban import telemetry
from psycopg.rows import dict_row

from ..audit import write_event
from ..db import Database
from ..db.queries import InSchema
from ..seams import SYSTEM_PRINCIPAL
from .workflow_release import Finish, Progress, propagate, release_ready

__all__ = ["REPAIRED_EVENT", "RepairResult", "WorkflowRepair"]

logger = logging.getLogger(__name__)

REPAIR_FINISHED = InSchema("workflows", "repair_finished")
REPAIR_WAITING = InSchema("workflows", "repair_waiting")
LOCK_WORKFLOWS = InSchema("workflows", "lock_workflows")
SET_PENDING = InSchema("workflows", "set_pending")
WAKE_QUEUES = InSchema("acks", "wake_queues")

REPAIRED_EVENT = "oban_powertools.workflow.repaired"
STOP_TIMEOUT = 5.0


class LeaderLike(Protocol):
    @property
    def is_leader(self) -> bool: ...


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

    def metadata(self, node: str) -> dict[str, Any]:
        return {
            "node": node,
            "workflows": len(self.workflows),
            "workflow_ids": [str(w) for w in self.workflows],
            "steps_finished": sum(len(v) for v in self.finished.values()),
            "steps_released": sum(len(v) for v in self.released.values()),
            "steps_cancelled": sum(len(v) for v in self.cancelled.values()),
            "jobs_released": len(self.progress.released),
        }

    def __bool__(self) -> bool:
        return bool(self.workflows)


class WorkflowRepair:
    """The repair loop of one node (acting only while it leads). See the module docstring."""

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
        self.database = database
        self._leader = leader
        self.node = node
        self.prefix = prefix
        self.interval = interval
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.last: RepairResult | None = None

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="oban-powertools-workflow-repair")

    async def stop(self) -> None:
        # Cancelling mid-transaction could strand a pooled connection: the loop is asked
        # to stop at its next safe point, and cancelled only if that takes too long.
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        with suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            if self._stopping.is_set():
                break
            if not self._leader.is_leader:
                continue
            try:
                self.last = await self.repair()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("workflow repair on %s failed; retrying next pass", self.node)

    async def _find(self, cur: Any, ids: list[UUID] | None) -> tuple[list[Any], list[Any]]:
        params = {"ids": ids, "limit": self.batch}
        await cur.execute(REPAIR_FINISHED.at(self.prefix), params)
        finished = list(await cur.fetchall())
        await cur.execute(REPAIR_WAITING.at(self.prefix), params)
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
            await cur.execute(LOCK_WORKFLOWS.at(self.prefix), {"ids": ids})
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
                    SET_PENDING.at(self.prefix),
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
                    WAKE_QUEUES.at(self.prefix),
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
            telemetry.execute(REPAIRED_EVENT, result.metadata(self.node))
        return result
