"""Acking jobs that belong to a composite (a workflow, a chain, a batch), and the
composite's follow-up in the same transaction (the ``query.ack_jobs`` hook).

oban's producer flushes the acks of the jobs it ran in one call to ``query.ack_jobs``.
:func:`ack_jobs` splits that batch:

* acks whose jobs carry none of the composites' meta keys go to the previous hook
  (oban's own ack) untouched: plain jobs pay nothing but one dict lookup per key;
* the others are acked in ONE transaction on oban's pool: oban's ack for all of them in
  one statement (oban's semantics, ``attempted_at`` guard included, so a stale ack
  changes nothing), then each composite's follow-up with the rows really acked, then
  oban's insert notification for the queues the follow-ups made more jobs available in
  than the ack freed slots there. Any error rolls the whole transaction back; oban
  keeps the acks and flushes them again on its next pass, and the guard makes that
  safe.

The ack statement is the workflows' ``finish_steps``
(:func:`.workflow_release.ack_and_finish`): besides the ack, it finishes the steps the
acks finished and releases their dependents, so the commonest composite, a workflow
step, costs its ack one statement, as a plain job's ack costs oban's. What it did for
the workflows is handed to their follow-up (``AckTransaction.workflow_rows``), which
goes on from there where there is more to do.

Why not every release notifies
==============================

The ack runs inside the producer that ran the jobs, and oban's producer fetches right
after it flushes its acks: every acked job freed one of its slots, so it fetches, at
once, as many jobs released into its own queue as it acked from there (a chain's next
step is fetched by the node that ran the step before, in the same pass). Only the
surplus (a fan-out; jobs released into other queues) needs other nodes' producers, and
only then is the notification sent: a notification the local producer did not need
would wake it mid-job and make it wait out its debounce.

Plugging in a composite kind
============================

A kind is one :class:`Composite` in :data:`COMPOSITES`: the meta key that marks its
jobs (set at insert, never changed afterwards, so no lookup is needed to know) and its
follow-up::

    async def after_ack(tx: AckTransaction, acked: Sequence[AckedJob]) -> None: ...

    COMPOSITES = (
        Composite("workflow", WORKFLOW_KEY, workflow_release.after_ack),
        Composite("batch", "batch_id", batch_release.after_ack),   # one line per kind
    )

The follow-up receives only the acked jobs carrying its key (a job may belong to two
kinds; each sees it), with the state the ack wrote (completed, cancelled, discarded,
retryable, scheduled: a follow-up ignores the states it has no use for). It runs SQL on
``tx.conn`` (its statements name tables in ``{schema}``: compose them with
``db.queries.InSchema`` and ``tx.schema``), calls ``tx.wake(queue)`` once for every job it made
available, and ``tx.after_commit(fn)`` for what must only happen
once the transaction committed (telemetry). It must not commit or roll back, and must
be safe to run again for the same jobs (it will not be: a re-flushed ack is not acked
twice, so it reaches no follow-up).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from ..batches.model import BATCH_KEY
from ..chains.options import CHAIN_KEY
from ..db.queries import StatementsInSchema
from ..workflows.plan import WORKFLOW_KEY
from . import batch_release, chain_release, workflow_release

__all__ = [
    "COMPOSITES",
    "AckTransaction",
    "AckedJob",
    "Composite",
    "FollowUp",
    "ack_jobs",
    "is_composite",
]

logger = logging.getLogger(__name__)

Q = StatementsInSchema(acks="wake_queues")


@dataclass(frozen=True, slots=True)
class AckedJob:
    """A job as the ack left it (a row of kind 'acked' of the ack statement)."""

    id: int
    state: str
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    meta: Mapping[str, Any]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AckedJob:
        return cls(
            row["job_id"],
            row["state"],
            row["queue"],
            row["worker"],
            row["attempt"],
            row["max_attempts"],
            row["meta"],
        )


@dataclass(slots=True)
class AckTransaction:
    """The ack's transaction as a follow-up sees it (see the module docstring)."""

    conn: AsyncConnection[Any]
    schema: str
    # What the ack statement did for workflow steps (see the module docstring).
    workflow_rows: list[dict[str, Any]] = field(default_factory=list)
    # Slots the ack freed in the acking producer, by queue (see the module docstring).
    freed: dict[str, int] = field(default_factory=dict)
    _woken: dict[str, int] = field(default_factory=dict)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def wake(self, queue: str) -> None:
        """One job was made available in ``queue``: its producers are notified when this
        transaction commits, unless the acking producer fetches it itself."""
        self._woken[queue] = self._woken.get(queue, 0) + 1

    def queues_to_wake(self) -> list[str]:
        return sorted(q for q, n in self._woken.items() if n > self.freed.get(q, 0))

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)


type FollowUp = Callable[[AckTransaction, Sequence[AckedJob]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Composite:
    kind: str
    meta_key: str
    follow_up: FollowUp


COMPOSITES: tuple[Composite, ...] = (
    Composite("workflow", WORKFLOW_KEY, workflow_release.after_ack),
    Composite("chain", CHAIN_KEY, chain_release.after_ack),
    Composite("batch", BATCH_KEY, batch_release.after_ack),
)
_KEYS = tuple(c.meta_key for c in COMPOSITES)

type PreviousAck = Callable[[Any, list[Any]], Awaitable[list[int]]]


def is_composite(meta: Mapping[str, Any] | None) -> bool:
    """Whether a job with this meta belongs to some composite."""
    return bool(meta) and any(key in meta for key in _KEYS)  # type: ignore[operator]


async def ack_jobs(query: Any, acks: list[Any], *, previous: PreviousAck, schema: str) -> list[int]:
    """``query.ack_jobs`` with the composites' follow-ups (see the module docstring).
    Returns the ids acked, as oban's ack does."""
    ours = [ack for ack in acks if is_composite(ack.job.meta)]
    if not ours:
        return await previous(query, acks)
    plain = [ack for ack in acks if not is_composite(ack.job.meta)]
    acked_ids = await previous(query, plain) if plain else []
    async with query._pool.connection() as conn:
        acked_ids.extend(await ack_in_transaction(conn, ours, schema=schema))
    return acked_ids


async def ack_in_transaction(
    conn: AsyncConnection[Any], acks: Sequence[Any], *, schema: str
) -> list[int]:
    """Ack ``acks`` (oban ``AckAction``s of composite jobs) and run the follow-ups, in one
    transaction on ``conn``; the telemetry of the follow-ups is emitted after commit."""
    tx = AckTransaction(conn, schema)
    async with conn.transaction():
        acked: list[AckedJob] = []
        for row in await workflow_release.ack_and_finish(conn, schema, _params(acks)):
            if row["kind"] == "acked":
                acked.append(AckedJob.of(row))
            else:
                tx.workflow_rows.append(row)
        for job in acked:
            tx.freed[job.queue] = tx.freed.get(job.queue, 0) + 1
        for composite in COMPOSITES:
            mine = [job for job in acked if composite.meta_key in job.meta]
            if mine:
                await composite.follow_up(tx, mine)
        queues = tx.queues_to_wake()
        if queues:
            await conn.execute(
                Q.wake_queues.at(schema), {"channel": f"{schema}.oban_insert", "queues": queues}
            )
    for callback in tx._after_commit:
        try:
            callback()
        except Exception:  # a telemetry handler's error must not undo a committed ack
            logger.exception("an after-commit callback of a composite ack failed")
    return [job.id for job in acked]


def _utc(value: datetime | None) -> datetime | None:
    # oban_jobs' timestamps are UTC without a zone, as oban's ack binds them.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _json(value: Mapping[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _params(acks: Iterable[Any]) -> dict[str, list[Any]]:
    # Sorted by id: concurrent acks lock the rows in one order.
    ordered = sorted(acks, key=lambda ack: ack.id)
    return {
        "ids": [ack.id for ack in ordered],
        "attempted_at": [_utc(ack.attempted_at) for ack in ordered],
        "states": [str(ack.state) for ack in ordered],
        "attempt_change": [ack.attempt_change for ack in ordered],
        "schedule_in": [ack.schedule_in for ack in ordered],
        "errors": [_json(ack.error) for ack in ordered],
        "meta": [_json(ack.meta) for ack in ordered],
    }
