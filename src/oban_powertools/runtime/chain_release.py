"""Releasing the next link of a chain in the transaction that acks the previous one.

The chain follow-up of :mod:`.acks`: for the acked links that finished (completed,
cancelled, discarded: a retryable or snoozed link keeps its chain waiting), their chains
are locked in key order (the row every insert into the chain locks too), the links
marked finished, and each chain moved on (``chains.finish_links``): the next link is
released, or the chain goes idle, or (a failed link whose ``on_failure`` is ``hold``)
the chain is held there for an operator's ``resume_chain``. One telemetry event per
released link, after commit: ``oban_powertools.chain.released``.

:func:`repair` is the same finish for links whose job finished through a path that
bypasses the ack hook (an operator's cancel or delete through oban itself); the
leader's stager runs it every few seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from .. import telemetry
from ..chains.options import CHAIN_KEY
from ..db.queries import StatementsInSchema

if TYPE_CHECKING:
    from .acks import AckedJob, AckTransaction

__all__ = ["FINISHED_STATES", "RELEASED_EVENT", "after_ack", "finish", "repair"]

logger = logging.getLogger(__name__)

Q = StatementsInSchema(
    chains="lock_chains finish_links stuck_heads",
    acks="wake_queues",
)

FINISHED_STATES = frozenset({"completed", "cancelled", "discarded"})
RELEASED = telemetry.declare(
    "oban_powertools.chain.released",
    measurements=(),
    metadata=("chain", "job_id", "queue", "state", "after_job_id", "after_outcome", "repaired"),
)
RELEASED_EVENT = RELEASED.name
REPAIR_LIMIT = 100


async def finish(
    conn: AsyncConnection[Any], schema: str, finished: Mapping[int, tuple[str, str]]
) -> list[dict[str, Any]]:
    """Finish links (job id -> (chain key, outcome)) on ``conn``, inside the caller's
    transaction; returns one row per chain moved (``chains.finish_links``)."""
    if not finished:
        return []
    cur = conn.cursor(row_factory=dict_row)
    keys = sorted({key for key, _ in finished.values()})
    await cur.execute(Q.lock_chains.at(schema), {"keys": keys})
    ids = sorted(finished)
    await cur.execute(
        Q.finish_links.at(schema), {"ids": ids, "states": [finished[i][1] for i in ids]}
    )
    return list(await cur.fetchall())


def _event(row: Mapping[str, Any], *, repaired: bool) -> dict[str, Any]:
    return {
        "chain": row["key"],
        "job_id": row["next_job_id"],
        "queue": row["released_queue"],
        "state": row["released_state"],
        "after_job_id": row["finished_job_id"],
        "after_outcome": row["finished_outcome"],
        "repaired": repaired,
    }


def _emit(events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        telemetry.emit(RELEASED, {}, event)


async def after_ack(tx: AckTransaction, acked: Sequence[AckedJob]) -> None:
    """Move on the chains of the acked links that finished (see the module docstring)."""
    finished = {
        job.id: (str(job.meta[CHAIN_KEY]), job.state)
        for job in acked
        if job.state in FINISHED_STATES and isinstance(job.meta.get(CHAIN_KEY), str)
    }
    rows = await finish(tx.conn, tx.schema, finished)
    events = [_event(row, repaired=False) for row in rows if row["released_queue"] is not None]
    for event in events:
        if event["state"] == "available":  # a scheduled one is staged when due
            tx.wake(event["queue"])
    if events:
        tx.after_commit(lambda: _emit(events))


async def repair(pool: Any, schema: str) -> int:
    """Finish the running chains' heads whose job finished without its ack reaching the
    chain (see ``chains.stuck_heads``), in one transaction on ``pool``; returns how many
    links were repaired. Cheap when nothing is stuck: one index read."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        async with conn.transaction():
            await cur.execute(Q.stuck_heads.at(schema), {"limit": REPAIR_LIMIT})
            stuck = {r["job_id"]: (r["chain_key"], r["state"]) for r in await cur.fetchall()}
            if not stuck:
                return 0
            rows = await finish(conn, schema, stuck)
            queues = sorted({r["released_queue"] for r in rows if r["released_queue"]})
            if queues:
                await cur.execute(
                    Q.wake_queues.at(schema),
                    {"channel": f"{schema}.oban_insert", "queues": queues},
                )
        events = [_event(row, repaired=True) for row in rows if row["released_queue"] is not None]
    for row in rows:
        logger.warning(
            "chain %r: link job %s finished without its ack reaching the chain (%s); "
            "repaired: chain now %s",
            row["key"],
            row["finished_job_id"],
            row["finished_outcome"],
            row["state"],
        )
    _emit(events)
    return len(rows)
