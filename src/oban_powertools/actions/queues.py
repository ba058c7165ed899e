"""Queue actions: pause, resume, scale. Persisted first, then signalled to every node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from ..db import Conn, oban_jobs
from ..db.queries import Statements
from ..queues import state
from .base import (
    ApplyContext,
    NamedAction,
    Params,
    PauseToggle,
    Snapshot,
    Snapshots,
    register,
    whole_number,
)

MAX_LIMIT = 10_000
Q = Statements(queue_states="lock_queue_key")


class QueueAction(NamedAction):
    resource_type = "queue"
    target_pattern = state.QUEUE_PATTERN
    target_noun = "queue name"

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        if lock:
            # Serialize decisions on one queue; the row may not exist yet, so lock its key.
            for queue in targets:
                await conn.execute(Q.lock_queue_key, {"key": f"powertools.queue:{queue}"})
        return await state.snapshot_queues(conn, targets)

    def decision(self, params: Params) -> Decision:
        """What confirming stores and signals, from the action's parameters."""
        raise NotImplementedError

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        """Store the decision, then signal every node (delivered when the transaction
        commits); the stored row is what restarted nodes and lost signals fall back on."""
        (queue,) = snapshots
        decision = self.decision(params)
        await conn.execute(decision.statement, {**_by(ctx, queue), **decision.values})
        await oban_jobs.notify(
            conn, ctx.prefix, "signal", {**decision.signal, "queue": queue, "ident": "any"}
        )
        return await state.snapshot_queues(conn, [queue])


@dataclass(frozen=True, slots=True)
class Decision:
    """A queue decision: the statement that stores it with its values, and the signal
    that tells running nodes."""

    statement: LiteralString
    values: Mapping[str, Any]
    signal: Mapping[str, Any]


def _by(ctx: ApplyContext, queue: str) -> dict[str, Any]:
    return {
        "queue": queue,
        "by_id": ctx.principal.id,
        "by_label": ctx.principal.label,
        "reason": ctx.reason,
    }


class SetQueuePaused(PauseToggle, QueueAction):
    """Pause and resume: the stored decision and the signal differ only in direction."""

    def decision(self, params: Params) -> Decision:
        signal = {"action": "pause" if self.pause else "resume"}
        return Decision(state.Q.set_paused, {"paused": self.pause}, signal)


@register
class PauseQueue(SetQueuePaused):
    name = "pause_queue"
    event = "queue.paused"
    label = "Pause queue"
    destructive = True
    pause = True

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (queue,) = snapshots
        return (
            f"Every node stops fetching new jobs from '{queue}' until resumed, including nodes "
            "that restart meanwhile. Running jobs finish."
        )


@register
class ResumeQueue(SetQueuePaused):
    name = "resume_queue"
    event = "queue.resumed"
    label = "Resume queue"
    pause = False

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (queue,) = snapshots
        return f"Every node resumes fetching jobs from '{queue}'."


@register
class ScaleQueue(QueueAction):
    name = "scale_queue"
    event = "queue.scaled"
    label = "Scale queue"
    destructive = True

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        self.refuse_unknown(raw, frozenset({"limit"}))
        return {"limit": whole_number(raw, "limit", MAX_LIMIT)}

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        current = snapshot["limit_override"] or snapshot["configured_limit"]
        if current == params["limit"]:
            return f"the queue already runs with limit {current}"
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        ((queue, snap),) = snapshots.items()
        current = snap["limit_override"] or snap["configured_limit"] or "its configured limit"
        return (
            f"Each node runs at most {params['limit']} '{queue}' jobs at once (was {current}), "
            "also after restarts."
        )

    def decision(self, params: Params) -> Decision:
        limit = params["limit"]
        return Decision(state.Q.set_limit, {"limit": limit}, {"action": "scale", "limit": limit})
