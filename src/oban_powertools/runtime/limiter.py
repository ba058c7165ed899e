"""The limited fetch: ``global_limit`` and ``rate_limit`` enforced where jobs are claimed.

oban's producer asks for jobs through the ``producer.get_jobs`` hook (:mod:`.hooks`).
For a queue with stored limits (:mod:`oban_powertools.limits.store`) the hook comes here,
and one short transaction

1. takes the queue's fetch lock (every node's fetches of the queue run one at a time),
2. reads the queue's limits and use in a new snapshot: jobs executing, from the jobs'
   own rows, and starts in the rate window, from the starts the claims recorded,
3. for a partitioned queue, walks the next partitions with available jobs, round-robin
   from the one served last, and shares the demand between them (:mod:`..limits.fairshare`),
4. claims what the limits allow and records the starts, in the same statement.

Nothing is counted that could drift from the jobs: a crashed node's jobs stop counting
the moment the lifeline makes them available again, a paused queue simply does not
fetch, a restart reads the same rows, and the window runs on the database's epoch
clock. The cost of a fetch follows the demand and the number of partitions probed, not
the number of jobs (completed or available) or partitions.

When a limit binds, the producer is poked again when the limit may have opened (the
oldest start leaving the rate window; other nodes' jobs finishing), because oban only
fetches when poked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from oban.job import Job
from psycopg.rows import class_row

from .. import telemetry
from ..db import Conn, Database
from ..db.queries import Statements
from ..limits import window
from ..limits.fairshare import Candidate, last_served, share
from ..limits.options import QueueLimits, parse_queue_limits
from ..limits.store import declare, load_stored

__all__ = ["FetchDecision", "FetchRequest", "Limiter"]

logger = logging.getLogger(__name__)

Q = Statements(
    queue_limits=(
        "fetch_lock fetch_usage partition_candidates claim oldest_transaction job_id_span"
        " rekey_slice"
    ),
)

# Every limited fetch that claimed jobs or was held back by a limit.
FETCHED = telemetry.declare(
    "oban_powertools.limiter.fetch",
    measurements=(
        "demand",
        "claimed",
        "running",
        "global_limit",
        "started",
        "rate_allowed",
        "partitions_probed",
    ),
    metadata=("queue", "limited_by"),
)
TELEMETRY_EVENT = FETCHED.name
# How long a node waits before asking again while a global limit is full: the jobs that
# free it may run on other nodes, whose completions do not poke this one.
GLOBAL_RETRY = 0.25
# How soon to continue walking partitions when every probed one was full.
WALK_RETRY = 0.02
REKEY_SLICE_IDS = 20_000
REKEY_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What the hook passes from oban's producer."""

    queue: str
    demand: int  # the producer's free local slots
    node: str
    uuid: str
    notify: Callable[[], None]


@dataclass(frozen=True, slots=True)
class FetchDecision:
    """What one limited fetch decided, as its telemetry event reports it."""

    queue: str
    demand: int
    claimed: int
    limited_by: tuple[str, ...]  # "global_limit" and/or "rate_limit"
    running: int
    global_limit: int | None
    started: int
    rate_allowed: int | None
    partitions_probed: int = 0
    retry_in: float | None = None

    def measurements(self) -> dict[str, Any]:
        return {
            "demand": self.demand,
            "claimed": self.claimed,
            "running": self.running,
            "global_limit": self.global_limit,
            "started": self.started,
            "rate_allowed": self.rate_allowed,
            "partitions_probed": self.partitions_probed,
        }

    def metadata(self) -> dict[str, Any]:
        return {"queue": self.queue, "limited_by": list(self.limited_by)}


@dataclass
class Limiter:
    """The limited fetch for one oban instance's producers, and the declarations its
    queues make at start. ``declared`` gives each queue's options from the code."""

    database: Database
    declared: Callable[[], Mapping[str, QueueLimits]]
    node: str
    interval: float = 5.0
    limited: frozenset[str] = frozenset()
    _task: asyncio.Task[None] | None = None
    _rekeys: set[asyncio.Task[None]] = field(default_factory=set)
    _pokes: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _misses: dict[str, int] = field(default_factory=dict)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.declare_new()
        await self.refresh()
        self._ready.set()
        self._task = asyncio.create_task(self._loop(), name="oban-powertools-limiter")

    async def stop(self) -> None:
        self._ready.clear()
        for handle in self._pokes.values():
            handle.cancel()
        self._pokes.clear()
        tasks = [t for t in (self._task, *self._rekeys) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        self._rekeys.clear()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.declare_new()
                await self.refresh()
            except Exception:
                logger.exception("could not refresh the stored queue limits")

    async def refresh(self) -> None:
        """Re-read which queues have limits (an operator may add some to any queue)."""
        async with self.database.connection() as conn:
            stored = await load_stored(conn)
        self.limited = frozenset(q for q, s in stored.items() if not s.limits.empty)

    async def declare_new(self) -> None:
        """Store the declarations of queues this node has not declared yet (all of them
        at start; a queue started later with ``oban.start_queue`` at the next refresh), and
        re-key a queue's jobs when its partition changed."""
        for queue, limits in self.declared().items():
            if queue in self._seen:
                continue
            async with self.database.transaction() as conn:
                result = await declare(conn, queue, limits, node=self.node)
            self._seen.add(queue)
            if result.partition_changed:
                task = asyncio.create_task(self._rekey(queue, result.txid), name=f"rekey-{queue}")
                self._rekeys.add(task)
                task.add_done_callback(self._rekeys.discard)

    # -- re-keying ----------------------------------------------------------------------

    async def _rekey(self, queue: str, txid: int | None) -> None:
        """Key the queue's unfinished jobs by its new partition: once now, and once more
        when every transaction that began before the declaration has ended (an insert
        running meanwhile may have been keyed by the old partition)."""
        try:
            changed = await self.rekey(queue)
            if txid is not None:
                await self._wait_past(txid)
                changed += await self.rekey(queue)
            logger.info("queue %s: %d jobs re-keyed to its partition", queue, changed)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("queue %s: re-keying its jobs failed", queue)

    async def _wait_past(self, txid: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REKEY_WAIT
        while loop.time() < deadline:
            async with self.database.connection() as conn:
                cur = await conn.execute(Q.oldest_transaction)
                row = await cur.fetchone()
            if row is not None and int(row["xmin"]) > txid:
                return
            await asyncio.sleep(0.2)
        logger.warning("a transaction older than the partition change is still open")

    async def rekey(self, queue: str) -> int:
        """Re-key one queue's unfinished jobs, in slices of ids (each its own statement)."""
        async with self.database.connection() as conn:
            stored = (await load_stored(conn)).get(queue)
            cur = await conn.execute(Q.job_id_span)
            span = await cur.fetchone()
        if stored is None or span is None:
            return 0
        partition = stored.limits.partition
        params = {
            "queue": queue,
            "fields": list(partition.fields) if partition else None,
            "keys": list(partition.keys) if partition else [],
        }
        changed = 0
        low, high = int(span["low"]), int(span["high"])
        while low <= high:
            top = low + REKEY_SLICE_IDS - 1
            async with self.database.connection() as conn:
                cur = await conn.execute(Q.rekey_slice, {**params, "low": low, "high": top})
                changed += max(cur.rowcount, 0)
            low = top + 1
        return changed

    # -- the fetch ----------------------------------------------------------------------

    async def ready(self) -> None:
        """Wait until the declarations are stored and the limited queues known: oban
        starts the producers alongside the stager, and a producer poked meanwhile (an
        insert's notification) must not fetch a limited queue unlimited."""
        if not self._ready.is_set():
            await self._ready.wait()

    def wants(self, queue: str) -> bool:
        return queue in self.limited

    async def fetch(self, request: FetchRequest) -> list[Job]:
        if request.demand <= 0:
            return []
        # Pipelined: BEGIN, the lock and the use read travel together, then the claim and
        # COMMIT; the server still runs them one after another (the use read's snapshot is
        # taken after the lock is granted), but the fetch waits on two round trips, not
        # five, which is what a fetch costs on a busy machine.
        async with self.database.pool.connection() as conn, conn.pipeline():
            async with conn.transaction():
                jobs, decision = await claim(conn, request)
        if decision.retry_in is not None:
            self._poke_later(request, self._backoff(decision))
        else:
            self._misses.pop(request.queue, None)
        if decision.limited_by or decision.claimed:
            telemetry.emit(FETCHED, decision.measurements(), decision.metadata())
        return jobs

    def _backoff(self, decision: FetchDecision) -> float:
        """When to ask again. Fetches that claim nothing while walking on through full
        partitions back off (20, 40, 80 ... ms, up to the global-limit wait), so a queue
        whose every partition is at its limit is not walked fifty times a second."""
        delay = decision.retry_in or WALK_RETRY
        if decision.claimed:
            self._misses.pop(decision.queue, None)
            return delay
        misses: int = self._misses.get(decision.queue, 0) + 1
        self._misses[decision.queue] = misses
        grown: float = WALK_RETRY * 2.0 ** (misses - 1)
        return min(max(delay, grown), max(delay, GLOBAL_RETRY))

    def _poke_later(self, request: FetchRequest, delay: float) -> None:
        pending = self._pokes.get(request.uuid)
        if pending is not None and not pending.cancelled():
            if pending.when() <= asyncio.get_running_loop().time() + delay:
                return
            pending.cancel()
        loop = asyncio.get_running_loop()

        def poke() -> None:
            self._pokes.pop(request.uuid, None)
            request.notify()

        self._pokes[request.uuid] = loop.call_later(delay, poke)


async def claim(conn: Conn, request: FetchRequest) -> tuple[list[Job], FetchDecision]:
    """One limited fetch inside ``conn``'s transaction (see the module docstring)."""
    queue = request.queue
    await conn.execute(Q.fetch_lock, {"queue": queue})
    cur = await conn.execute(Q.fetch_usage, {"queue": queue})
    usage = await cur.fetchone()
    if usage is None:  # the limits were removed since the runtime last looked
        return await _claim(conn, _claim_params(request, request.demand)), _plain(request)
    now = float(usage["now_epoch"])
    global_limit, rate_allowed, period = (
        usage["global_limit"],
        usage["rate_allowed"],
        usage["rate_period"],
    )
    running, started = int(usage["running"]), int(usage["started"])
    limited_by: list[str] = []
    retry_in: float | None = None

    # What the unpartitioned limits leave of the local demand.
    demand = request.demand
    if global_limit is not None and not usage["global_partitioned"]:
        if global_limit - running < demand:
            limited_by.append("global_limit")
            retry_in = GLOBAL_RETRY
        demand = min(demand, max(0, global_limit - running))
    if rate_allowed is not None and not usage["rate_partitioned"]:
        if rate_allowed - started < demand:
            limited_by.append("rate_limit")
            oldest = usage["oldest_bucket"]
            if oldest is not None:
                retry_in = _sooner(retry_in, window.resets_in(now, period, int(oldest)))
        demand = min(demand, max(0, rate_allowed - started))

    record = rate_allowed is not None
    base = {
        **_claim_params(request, demand),
        # The claim stamps attempted_at with the same clock the window was counted by.
        "now_at": usage["now_at"],
        "record": record,
        "bucket_end": window.bucket_end(now, period) if record else 0,
        "expired": (now - period) if record else 0,
    }
    probed = 0
    if demand <= 0:
        jobs: list[Job] = []
    elif not usage["partitioned"]:
        jobs = await _claim(conn, base)
    else:
        probe = min(4 * demand + 16, 1_000)
        cur = await conn.execute(
            Q.partition_candidates,
            {
                "queue": queue,
                "turn": usage["turn"],
                "probe": probe,
                "cap": demand,
                "window_floor": (now - period) if record else 0,
            },
        )
        rows = await cur.fetchall()
        probed = len(rows)
        candidates = []
        clipped: set[str] = set()
        for r in rows:
            available = capacity = int(r["available"])
            if global_limit is not None and usage["global_partitioned"]:
                room = global_limit - int(r["running"])
                if room < capacity:
                    clipped.add("global_limit")
                capacity = min(capacity, max(0, room))
            if rate_allowed is not None and usage["rate_partitioned"]:
                room = rate_allowed - int(r["started"])
                if room < available:
                    clipped.add("rate_limit")
                    if r["oldest_bucket"] is not None:
                        retry_in = _sooner(
                            retry_in, window.resets_in(now, period, int(r["oldest_bucket"]))
                        )
                capacity = min(capacity, max(0, room))
            candidates.append(Candidate(r["key"], capacity))
        taken = share(candidates, demand)
        served = sum(taken.values())
        if served < demand and probed:
            # Every probed partition took what it could: the next fetch starts after the
            # last of them (beyond the probe, or from the start again).
            turn: str | None = candidates[-1].key
            limited_by.extend(sorted(clipped - set(limited_by)))
            if probed >= probe:
                retry_in = _sooner(retry_in, WALK_RETRY)
            elif "global_limit" in clipped:
                retry_in = _sooner(retry_in, GLOBAL_RETRY)
        else:
            turn = last_served(candidates, taken)
        keys = [c.key for c in candidates if c.key in taken]
        jobs = await _claim(
            conn,
            {
                **base,
                "keys": keys,
                "counts": [taken[k] for k in keys],
                "by_partition": bool(usage["rate_partitioned"]),
                "turn": turn,
            },
        )
    decision = FetchDecision(
        queue=queue,
        demand=request.demand,
        claimed=len(jobs),
        limited_by=tuple(limited_by),
        running=running,
        global_limit=global_limit,
        started=started,
        rate_allowed=rate_allowed,
        partitions_probed=probed,
        retry_in=retry_in,
    )
    return jobs, decision


def _sooner(current: float | None, candidate: float) -> float:
    candidate = max(candidate, WALK_RETRY)
    return candidate if current is None else min(current, candidate)


def _claim_params(request: FetchRequest, demand: int) -> dict[str, Any]:
    return {
        "queue": request.queue,
        "demand": demand,
        "attempted_by": [request.node, request.uuid],
        "now_at": None,
        "record": False,
        "bucket_end": 0,
        "expired": 0,
        # The whole queue; a partitioned claim gives its keys, counts and turn.
        "keys": None,
        "counts": None,
        "by_partition": False,
        "turn": None,
    }


def _plain(request: FetchRequest) -> FetchDecision:
    return FetchDecision(request.queue, request.demand, 0, (), 0, None, 0, None)


async def _claim(conn: Conn, params: Mapping[str, Any]) -> list[Job]:
    async with conn.cursor(row_factory=class_row(Job)) as cur:
        await cur.execute(Q.claim, params)
        return await cur.fetchall()


def declared_limits(options: Mapping[str, Mapping[str, Any]]) -> dict[str, QueueLimits]:
    """Each queue's limits from its oban options (validated again; oban's validation hook
    already refused bad ones when the instance was built)."""
    return {queue: parse_queue_limits(queue, opts) for queue, opts in options.items()}
