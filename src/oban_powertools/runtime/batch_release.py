"""Counting a batch's jobs as they finish, and enqueueing its callbacks exactly once.

The batch follow-up of :mod:`.acks`: the acked batch jobs that finished (completed,
cancelled, discarded) are counted into their batches' counters (``batches.
count_finished``: each job's first finish only, the batches locked in id order); in the
ack whose counts finish a batch, the due callbacks (:func:`~oban_powertools.batches.
callbacks_due`) are claimed in the outbox (primary key: batch, kind) and inserted as
jobs by one statement (``batches.enqueue_callbacks``). Twenty final acks racing on
one batch are serialized by its row lock; only the one that brings the counters to the
total sees the batch finished, and the outbox's key would refuse a second writer
anyway. One telemetry event per callback, after commit:
``oban_powertools.batch.callback_enqueued``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .. import telemetry
from ..batches.model import BATCH_KEY, CALLBACK_KEY, CALLBACK_OF_KEY, callbacks_due
from ..db.queries import StatementsInSchema

if TYPE_CHECKING:
    from .acks import AckedJob, AckTransaction

__all__ = ["CALLBACK_EVENT", "after_ack"]

Q = StatementsInSchema(batches="lock_batches count_finished enqueue_callbacks")

FINISHED_STATES = frozenset({"completed", "cancelled", "discarded"})
CALLBACK_ENQUEUED = telemetry.declare(
    "oban_powertools.batch.callback_enqueued",
    measurements=("jobs_total", "jobs_completed", "jobs_cancelled", "jobs_discarded"),
    metadata=("batch_id", "batch_name", "kind", "job_id", "queue", "worker"),
)
CALLBACK_EVENT = CALLBACK_ENQUEUED.name


def _due(
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    found = []
    for row in rows:
        if not row["finished"]:
            continue
        callbacks: Mapping[str, Any] = row["callbacks"] or {}
        for kind in callbacks_due(
            callbacks,
            total=row["jobs_total"],
            completed=row["jobs_completed"],
            cancelled=row["jobs_cancelled"],
            discarded=row["jobs_discarded"],
        ):
            found.append((row, kind, callbacks[kind]))
    return found


async def after_ack(tx: AckTransaction, acked: Sequence[AckedJob]) -> None:
    """Count the finished batch jobs and enqueue the callbacks of the batches they
    finish (see the module docstring)."""
    finished = sorted(
        (job.id, job.state)
        for job in acked
        if job.state in FINISHED_STATES and job.meta.get(BATCH_KEY) is not None
    )
    if not finished:
        return
    batch_ids = sorted({str(job.meta[BATCH_KEY]) for job in acked if job.state in FINISHED_STATES})
    cur = tx.conn.cursor(row_factory=dict_row)
    await cur.execute(Q.lock_batches.at(tx.schema), {"ids": batch_ids})
    await cur.execute(
        Q.count_finished.at(tx.schema),
        {"ids": [i for i, _ in finished], "states": [s for _, s in finished]},
    )
    due = _due(await cur.fetchall())
    if not due:
        return
    await cur.execute(Q.enqueue_callbacks.at(tx.schema), _callback_params(due, tx.schema))
    counters = {str(row["id"]): row for row, _, _ in due}
    events = []
    for row in await cur.fetchall():
        batch = counters[str(row["batch_id"])]
        tx.wake(row["queue"])
        events.append(
            {
                "batch_id": str(row["batch_id"]),
                "batch_name": batch["name"],
                "kind": row["kind"],
                "job_id": row["job_id"],
                "queue": row["queue"],
                "worker": row["worker"],
                "jobs_total": batch["jobs_total"],
                "jobs_completed": batch["jobs_completed"],
                "jobs_cancelled": batch["jobs_cancelled"],
                "jobs_discarded": batch["jobs_discarded"],
            }
        )
    if events:

        def emit() -> None:
            for event in events:
                telemetry.emit(
                    CALLBACK_ENQUEUED,
                    {k: event[k] for k in CALLBACK_ENQUEUED.measurements},
                    {k: event[k] for k in CALLBACK_ENQUEUED.metadata},
                )

        tx.after_commit(emit)


def _callback_params(
    due: Sequence[tuple[Mapping[str, Any], str, Mapping[str, Any]]], schema: str
) -> dict[str, Any]:
    return {
        "table": f"{schema}.oban_jobs",
        "batch_ids": [row["id"] for row, _, _ in due],
        "kinds": [kind for _, kind, _ in due],
        "workers": [spec["worker"] for _, _, spec in due],
        "queues": [spec["queue"] for _, _, spec in due],
        "args": [Jsonb(spec.get("args") or {}) for _, _, spec in due],
        "meta": [
            Jsonb({**(spec.get("meta") or {}), CALLBACK_KEY: kind, CALLBACK_OF_KEY: str(row["id"])})
            for row, kind, spec in due
        ],
        "max_attempts": [spec.get("max_attempts", 20) for _, _, spec in due],
        "priority": [spec.get("priority", 0) for _, _, spec in due],
        "tags": [Jsonb(list(spec.get("tags") or [])) for _, _, spec in due],
    }
