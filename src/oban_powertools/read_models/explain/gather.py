"""What the explainer reads about one job, in one connection: the job, its queue's stored
decision and producers, which nodes run the Powertools runtime, the queue's limits and
their use for the job's partition, the jobs and partitions ahead of it, its cron entry.

Every read is bounded: one job, one queue's producers and executing jobs, capped walks
of oban's index and of the partition index. Nothing counts over the whole table, so the
answer costs the same at 1,000 jobs or 10 million.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ...cron import entries
from ...db import Conn
from ...db.queries import Statements
from ...display import Display
from ...limits.store import StoredLimits, load_stored
from ...limits.usage import PartitionUse, partition_use
from ...runtime import presence
from ...seams import Resource
from ..common import PRODUCER_LIVE_SECONDS, utc

__all__ = ["AHEAD_CAP", "HELD_STATES", "Producer", "Situation", "gather"]

Q = Statements(
    explain=(
        "job queue_decision executing_by_producer jobs_ahead partition_jobs_ahead partitions_ahead"
    ),
    lifeline="job_evidence",
    chain_views="chain_of_job",
    producers="queue_producers",
    workflow_pages="step_of_job",
)

WAITING_STATES = frozenset({"available", "scheduled", "retryable"})
# A suspended job waits too, for whatever holds it (a workflow step: its dependencies).
HELD_STATES = frozenset({"suspended"})
# Jobs (and partitions) ahead are counted up to here; past it the answer says "1,000+".
AHEAD_CAP = 1_000
PARTITIONS_CAP = 100


@dataclass(frozen=True, slots=True)
class Producer:
    """One node's producer of the queue, as oban's row says, with what it runs."""

    node: str  # as stored (for matching)
    shown: str  # as the display policy shows it
    limit: int | None
    paused: bool
    age_seconds: int
    runtime: bool  # the node runs the Powertools runtime
    running: int  # jobs of the queue executing on it

    @property
    def live(self) -> bool:
        return self.age_seconds <= PRODUCER_LIVE_SECONDS


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything the reasons are decided from; raw values plus the display to show them."""

    display: Display
    resource: Resource
    job: Mapping[str, Any]
    now: datetime
    decision: Mapping[str, Any] | None
    producers: list[Producer]
    stored: StoredLimits | None
    key: str | None  # the job's meta.partition_key
    global_use: PartitionUse | None  # what counts against its global limit
    rate_use: PartitionUse | None  # what counts against its rate limit
    partitions_ahead: int | None  # partitions the round-robin serves before the job's
    jobs_ahead: int | None  # jobs its fetch takes before it (in its partition, if any)
    cron: Mapping[str, Any] | None
    # An executing job's producer and its last heartbeat (lifeline.sql: job_evidence).
    heartbeat: Mapping[str, Any] | None = None
    # The workflow step the job is (with its dependencies), when it is one.
    step: Mapping[str, Any] | None = None
    # A chain link's place in its chain (chain_views.chain_of_job), None for other jobs.
    chain: Mapping[str, Any] | None = None

    @property
    def queue(self) -> str:
        return str(self.job["queue"])

    @property
    def state(self) -> str:
        return str(self.job["state"])

    @property
    def partitioned(self) -> bool:
        return self.stored is not None and self.stored.limits.partition is not None

    def show(self, kind: str, value: Any, field: str) -> str:
        return self.display.text(kind, value, resource=self.resource, field=field)

    def shown_partition(self, key: str | None = None) -> str:
        """A partition (the job's unless ``key`` is given) as its fields (``worker=...,
        customer_id=...``), each value through the policy as the args key it came from:
        a partition key holds args values."""
        key = self.key if key is None else key
        if key is None or self.stored is None or self.stored.limits.partition is None:
            return "none"
        partition = self.stored.limits.partition
        names = (["worker"] if "worker" in partition.fields else []) + (
            list(partition.keys) if "args" in partition.fields else []
        )
        try:
            values = json.loads(key)
        except ValueError:
            values = None
        if not isinstance(values, list) or len(values) != len(names):
            # Not a key this partition makes: shown whole, never as it is.
            return self.show("args", {"partition_key": key}, "partition_key")
        shown = self.display.tree(
            "args", dict(zip(names, values, strict=True)), resource=self.resource
        )
        return ", ".join(f"{k}={_plain(v)}" for k, v in shown.value.items())


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def gather(conn: Conn, display: Display, job_id: int) -> Situation | None:
    cur = await conn.execute(Q.job, {"id": job_id})
    job = await cur.fetchone()
    if job is None:
        return None
    resource = Resource("job", str(job_id))
    now = utc(job["db_now"])
    assert now is not None
    meta = job["meta"] if isinstance(job["meta"], Mapping) else {}
    step = None
    if isinstance(meta.get("workflow_id"), str):
        cur = await conn.execute(Q.step_of_job, {"job_id": job_id})
        step = await cur.fetchone()
    situation = Situation(
        display, resource, job, now, None, [], None, None, None, None, None, None, None, step=step
    )
    chain = None
    if "chain" in meta:  # set at insert, never changed: a plain job costs no query
        cur = await conn.execute(Q.chain_of_job, {"job_id": job_id})
        chain = await cur.fetchone()
        situation = replace(situation, chain=chain)
    if job["state"] == "executing":
        cur = await conn.execute(Q.job_evidence, {"ids": [job_id]})
        return replace(situation, heartbeat=await cur.fetchone())
    if job["state"] not in WAITING_STATES:
        # A held (suspended) job is not fetched: the queue, nodes and limits do not
        # matter to it until it is released.
        return situation
    queue = job["queue"]

    cur = await conn.execute(Q.queue_decision, {"queue": queue})
    decision = await cur.fetchone()
    producers = await _producers(conn, display, resource, queue)
    stored = (await load_stored(conn)).get(queue)
    if stored is not None and stored.limits.empty:
        stored = None
    raw_key = meta.get("partition_key")
    key = raw_key if isinstance(raw_key, str) else None

    global_use = rate_use = None
    partitions_ahead = None
    if stored is not None:
        g, r = stored.limits.global_limit, stored.limits.rate_limit
        uses: dict[str, PartitionUse | None] = {}

        async def use(k: str) -> PartitionUse | None:
            if k not in uses:
                uses[k] = await partition_use(conn, stored, k)
            return uses[k]

        # A partitioned limit counts the job's partition; an unpartitioned one the whole
        # queue (its starts are kept under the key '').
        if g is not None and (g.partition is None or key is not None):
            global_use = await use(key if g.partition is not None and key else "")
        if r is not None and (r.partition is None or key is not None):
            rate_use = await use(key if r.partition is not None and key else "")
        # Only an available job waits for the round-robin (the others are not fetched yet).
        if stored.limits.partition is not None and key is not None and job["state"] == "available":
            turn = next((u.turn for u in uses.values() if u is not None), None)
            cur = await conn.execute(
                Q.partitions_ahead,
                {"queue": queue, "key": key, "turn": turn, "cap": PARTITIONS_CAP},
            )
            row = await cur.fetchone()
            partitions_ahead = int(row["n"]) if row else 0

    jobs_ahead = None
    if job["state"] == "available":
        params = {
            "queue": queue,
            "priority": job["priority"],
            "scheduled_at": job["scheduled_at"],
            "id": job["id"],
            "cap": AHEAD_CAP,
        }
        if stored is not None and stored.limits.partition is not None and key is not None:
            cur = await conn.execute(Q.partition_jobs_ahead, {**params, "key": key})
        else:
            cur = await conn.execute(Q.jobs_ahead, params)
        row = await cur.fetchone()
        jobs_ahead = int(row["n"]) if row else 0

    cron = None
    cron_name = meta.get("cron_name")
    if isinstance(cron_name, str):
        cur = await conn.execute(entries.Q.entry_snapshots, {"names": [cron_name]})
        cron = await cur.fetchone()

    return Situation(
        display,
        resource,
        job,
        now,
        decision,
        producers,
        stored,
        key,
        global_use,
        rate_use,
        partitions_ahead,
        jobs_ahead,
        cron,
        step=step,
        chain=chain,
    )


async def _producers(
    conn: Conn, display: Display, resource: Resource, queue: str
) -> list[Producer]:
    cur = await conn.execute(Q.queue_producers, {"queues": [queue]})
    rows = await cur.fetchall()
    if not rows:
        return []
    cur = await conn.execute(Q.executing_by_producer, {"queue": queue})
    by_uuid: dict[str, int] = {}
    by_node: dict[str, int] = {}
    for r in await cur.fetchall():
        if r["uuid"]:
            by_uuid[r["uuid"]] = by_uuid.get(r["uuid"], 0) + int(r["running"])
        elif r["node"]:
            by_node[r["node"]] = by_node.get(r["node"], 0) + int(r["running"])
    status = await presence.runtime_status(conn)
    with_runtime = {(n.name, n.node) for n in status.nodes if n.runtime}
    out = []
    for p in rows:
        meta = p["meta"] if isinstance(p["meta"], Mapping) else {}
        limit = meta.get("local_limit")
        out.append(
            Producer(
                node=p["node"],
                shown=display.text("node", p["node"], resource=resource, field="node"),
                limit=limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
                paused=bool(meta.get("paused", False)),
                age_seconds=int(p["age_seconds"] or 0),
                runtime=(p["name"], p["node"]) in with_runtime,
                running=by_uuid.get(p["uuid"], 0) + by_node.get(p["node"], 0),
            )
        )
    return out
