"""The leader-run cron scheduler: every due minute of every entry becomes exactly one slot.

A :class:`CronScheduler` runs on every node and acts only while its node is oban's leader.
At every minute boundary (and as soon as it becomes leader) it *evaluates*: it decides,
for each entry that is not paused, every due minute in ``(evaluated_through, now]``
(slots are UTC minutes; see :mod:`.expression` for how wall-clock time and DST map onto
them). :meth:`CronScheduler.evaluate` takes an explicit ``now``, so tests and tools can
drive it through any span of minutes without waiting.

Exactly once
============

A slot is claimed by inserting its ``powertools_cron_slots`` row (unique on entry and
minute), in the same transaction that inserts its job and advances the entry's
``evaluated_through``, with the entry row locked ``FOR UPDATE``. Two nodes that both
believe they lead (leadership handover, explicit ``evaluate`` calls) serialize on the
row lock, and the second sees the advanced ``evaluated_through`` and the claimed slot.
A pause committed before the lock is taken wins: the locked re-read sees it and claims
nothing, so **a paused entry gets no new slot until it is resumed.**

Claiming is set-based: a chunk's decisions are made slot by slot in Python (overlap,
catch-up and follow-ups depend on the slots before), then its jobs, slot rows and entry
updates are written in a few statements, still in the chunk's one transaction. Which of
the planned slots were claimed already (an entry redefined in the minute it fired starts
its evaluation over) is read under the entry locks before any decision, so every decision
after such a slot sees that it did not fire.

Cheap when nothing is due
=========================

One query reads every unpaused entry; due minutes are computed in Python (parsed
expressions and each entry's next fire time are cached); only entries with something to
do are locked and written, in chunks. ``evaluated_through`` is therefore advanced only
when an entry is written, not every minute: minutes in ``(evaluated_through, now]`` on
which the expression does not fire need no decision. What is due in that span is decided
the moment it is due, so a lagging ``evaluated_through`` never creates a run.

Catch-up
========

Due minutes before the *live window* were missed: the scheduler was down, or the entry
was paused. The ``catch_up_policy`` decides them:

* ``none``: no job; one slot row, outcome ``skipped_catch_up``, records the latest missed
  minute with the gap in ``detail`` (so forensics can show the decision);
* ``latest``: the latest missed minute is enqueued (kind ``catch_up``);
* ``all``: the ``max_catch_up`` most recent missed minutes are enqueued (kind
  ``catch_up``); when older ones exist, one ``skipped_catch_up`` row records the newest
  dropped minute.

The live window is normally just the current minute. The loop widens it back to the last
minute any leader evaluated (from ``powertools_scheduler_coverage``) when that is at most
``grace`` ago, so a late tick or a quick leadership handover fires the minutes in between
as ``scheduled`` (with ``detail.late``) instead of treating them as downtime. Minutes
before the entry's last change (``updated_at``: pause, resume, redefinition) are never
live, since the entry may not have been runnable then. A new entry
(``evaluated_through`` NULL) starts at the current minute: no backfill.

Overlap
=======

An entry has an *active job* when one of its jobs is available, scheduled, executing or
retryable. ``last_job_id`` answers that cheaply; otherwise jobs in the entry's queue with
``meta.cron_name`` = the entry are looked up (through oban's state/queue index). Then:

* ``allow``: always enqueue;
* ``skip``: outcome ``skipped_overlap``, no job;
* ``queue_one``: outcome ``deferred`` and ``follow_up_slot_at`` set, at most one pending
  (further overlapping slots are ``skipped_overlap``). Each evaluation checks pending
  follow-ups: once no job is active, the follow-up is enqueued and its slot row becomes
  ``enqueued`` with the job id. A paused entry's follow-up waits for the resume;
* ``cancel_previous``: the active jobs are cancelled (executing ones are signalled, as
  oban does) and the slot is enqueued with outcome ``replaced_previous``.

Coverage and pause expiry
=========================

Each evaluation records the minutes it decided in ``powertools_scheduler_coverage``
(extending this node's latest span when contiguous), so a due minute without a slot
inside a span was decided (paused, skipped), and outside every span nobody looked.
Entries whose pause has expired are resumed first, each with a ``cron.resumed`` audit
event by the system principal in the same transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..actions.pipeline import SYSTEM_PRINCIPAL
from ..audit import write_event
from ..db import Conn, Database, oban_jobs
from ..db.queries import sql
from ..errors import InvalidArgument
from . import entries
from .expression import (
    CronExpression,
    due_minutes,
    fires_at,
    latest_due,
    load_timezone,
    next_fire,
)

__all__ = [
    "ACTIVE_STATES",
    "Clock",
    "CronScheduler",
    "Evaluation",
    "LeaderLike",
    "SlotPlan",
    "SystemClock",
    "plan_slots",
]

logger = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
ACTIVE_STATES = ("available", "scheduled", "executing", "retryable")
DEFAULT_GRACE = timedelta(minutes=3)
# Long enough for an in-flight evaluation to commit, short enough not to hang shutdown.
STOP_TIMEOUT = 5.0

CANDIDATES = sql("cron_entries", "candidates")
LOCK_ENTRIES = sql("cron_entries", "lock_entries")
ADVANCE_ENTRIES = sql("cron_entries", "advance_entries")


def _advance(
    changes: Mapping[str, tuple[datetime, datetime | None, int | None, datetime | None]],
) -> dict[str, Any]:
    """ADVANCE_ENTRIES's parameters: (through, last slot, last job, follow-up) per entry."""
    return {
        "names": list(changes),
        "entries": Jsonb(
            [
                {
                    "name": name,
                    "through": _iso(through),
                    "last_slot_at": _iso(last_slot),
                    "last_job": last_job,
                    "follow_up": _iso(follow_up),
                }
                for name, (through, last_slot, last_job, follow_up) in changes.items()
            ]
        ),
    }


ACTIVE_BY_ID = sql("oban_jobs", "active_cron_jobs_by_id")
ACTIVE_BY_META = sql("oban_jobs", "active_cron_jobs_by_entry")

# -- a chunk's decisions written set-based (see _Batch) ---------------------------------

# The rows of a chunk travel as one JSON array each: one json.dumps in Python instead of
# a dump and an escape per array element, which cost more than the statements themselves.

INSERT_JOBS = sql("oban_jobs", "insert_cron_jobs")
NOTIFY_EACH = sql("oban_jobs", "notify_each")
CLAIMED_SLOTS = sql("cron_slots", "claimed_slots")
INSERT_SLOTS = sql("cron_slots", "insert_slots")
RELEASE_FOLLOW_UPS = sql("cron_slots", "release_follow_ups")
SET_SLOT_JOBS = sql("cron_slots", "set_slot_jobs")
EXPIRED_PAUSES = sql("cron_entries", "expired_pauses")
LAST_COVERED = sql("scheduler_coverage", "last_covered")
RECORD_COVERAGE = sql("scheduler_coverage", "record_coverage")


class LeaderLike(Protocol):
    """What the scheduler needs from oban's leader: whether this node leads now."""

    @property
    def is_leader(self) -> bool: ...


class Clock(Protocol):
    """Time for the loop. The real one is :class:`SystemClock`; tests may run faster."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        """Return when the clock reaches ``target``, ``stopping`` is set, or ``limit``
        real seconds passed, whichever is first."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        seconds = min(max((target - self.now()).total_seconds(), 0.0), limit)
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)


def describe_error(error: BaseException) -> str:
    """An error as the scheduler logs it and records it on a slot.

    For a database error only the class, SQLSTATE and primary message: PostgreSQL's DETAIL
    (which ``str()`` includes) quotes the row it refused, e.g. "Failing row contains (...)"
    with the job's args, and those may hold values the display policy redacts.
    """
    if isinstance(error, psycopg.Error):
        primary = error.diag.message_primary if error.sqlstate else None
        if primary is None:
            # Raised by psycopg itself (no server message, no DETAIL): its text is ours.
            primary = str(error).split("\n", 1)[0]
        return f"{type(error).__name__} (SQLSTATE {error.sqlstate or 'none'}): {primary}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def transient(error: BaseException) -> bool:
    """Whether an error says nothing about the entry: the database is unreachable or
    restarting (connection errors, pool timeouts) or a lock conflict rolled it back."""
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def log_error(message: str, *args: object, error: BaseException) -> None:
    """Log ``error`` without the database's DETAIL (see :func:`describe_error`); other
    errors are bugs and keep their traceback."""
    if isinstance(error, psycopg.Error):
        logger.error(message + ": %s", *args, describe_error(error))
    else:
        logger.error(message, *args, exc_info=error)


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(value: datetime) -> datetime:
    floor = floor_minute(value)
    return floor if floor == value else floor + MINUTE


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What one entry should claim at one evaluation (see :func:`plan_slots`)."""

    slots: list[tuple[datetime, str, bool]]  # (minute, kind, late), ascending
    skipped: tuple[datetime, dict[str, Any]] | None  # a 'skipped_catch_up' row
    through: datetime


def plan_slots(
    expr: CronExpression,
    tz: ZoneInfo,
    *,
    evaluated_through: datetime | None,
    updated_at: datetime | None,
    now_minute: datetime,
    live_from: datetime,
    catch_up_policy: str,
    max_catch_up: int,
    first_due: datetime | None = None,
) -> SlotPlan | None:
    """The slots an entry claims when evaluated at ``now_minute``; None if already done.

    Pure: the decisions of the module docstring without the database, so they can be
    tested minute by minute. ``first_due``, when the caller knows it, must be
    ``next_fire(expr, tz, evaluated_through)``: nothing fires before it, so those minutes
    are not searched (the scheduler caches it; without it the result is the same).
    """
    now = now_minute
    if evaluated_through is None:
        # A new entry starts now: no backfill of minutes before it was first looked at.
        first = [(now, "scheduled", False)] if fires_at(expr, tz, now) else []
        return SlotPlan(first, None, now)
    through = floor_minute(evaluated_through)
    if through >= now:
        return None
    live_floor = live_from
    if updated_at is not None:
        live_floor = max(live_floor, ceil_minute(updated_at.astimezone(UTC)))
    live_floor = max(min(live_floor, now), through + MINUTE)
    span = int((now - live_floor) / MINUTE) + 1
    if first_due is None or first_due < live_floor:
        live = due_minutes(expr, tz, live_floor - MINUTE, now, limit=span)
    elif first_due <= now:
        # The first live minute is first_due; at the top of the hour it is usually now.
        live = [first_due, *due_minutes(expr, tz, first_due, now, limit=span - 1)]
    else:
        live = []
    slots: list[tuple[datetime, str, bool]] = []
    skipped: tuple[datetime, dict[str, Any]] | None = None
    gap_last = live_floor - MINUTE
    if gap_last > through and (first_due is None or first_due <= gap_last):
        gap = {"gap_from": _iso(through + MINUTE), "gap_to": _iso(gap_last)}
        if catch_up_policy == "none":
            latest = latest_due(expr, tz, through, gap_last)
            if latest is not None:
                skipped = (latest, {"policy": "none", **gap})
        elif catch_up_policy == "latest":
            latest = latest_due(expr, tz, through, gap_last)
            if latest is not None:
                slots.append((latest, "catch_up", False))
        else:
            # Walk back from the end of the gap: the most recent missed minutes matter.
            missed: list[datetime] = []
            until = gap_last
            while len(missed) < max_catch_up:
                found = latest_due(expr, tz, through, until)
                if found is None:
                    break
                missed.append(found)
                until = found - MINUTE
            if len(missed) == max_catch_up:
                older = latest_due(expr, tz, through, until)
                if older is not None:
                    skipped = (
                        older,
                        {
                            "policy": "all",
                            "max_catch_up": max_catch_up,
                            "older_dropped": True,
                            **gap,
                        },
                    )
            slots.extend((m, "catch_up", False) for m in reversed(missed))
    slots.extend((m, "scheduled", m < now) for m in live)
    return SlotPlan(slots, skipped, now)


@dataclass(slots=True)
class Evaluation:
    """What one evaluation did (for logs, tests and the loop)."""

    minute: datetime
    live_from: datetime
    examined: int = 0
    locked: int = 0
    enqueued: int = 0
    skipped: int = 0
    deferred: int = 0
    replaced: int = 0
    follow_ups: int = 0
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, other: Evaluation) -> None:
        """Count what a committed transaction did (a rolled-back one counts nothing)."""
        self.locked += other.locked
        self.enqueued += other.enqueued
        self.skipped += other.skipped
        self.deferred += other.deferred
        self.replaced += other.replaced
        self.follow_ups += other.follow_ups


@dataclass(slots=True)
class _Cached:
    key: tuple[str, str, datetime | None]
    next_fire: datetime | None
    valid: bool = True


class _Claimed(Exception):
    """A slot that :class:`_Batch` wrote had been claimed meanwhile; the chunk rolls back."""


@dataclass(slots=True)
class _PlannedSlot:
    name: str
    slot_at: datetime
    kind: str
    outcome: str
    detail: dict[str, Any]
    job: int | None  # a placeholder (see _Batch)
    replacing: list[int]


class _Batch:
    """A chunk's decisions, collected and written by :meth:`finish` in a handful of
    set-based statements (jobs, one notification per queue, cancellations, slot rows)
    instead of about six per slot.

    Until then a new job is known by a placeholder, -1 for the first, -2 for the second
    (oban's ids are positive), wherever a decision uses it: the active jobs a later slot
    of the entry sees (``active_jobs`` in its detail), the jobs cancel_previous replaces,
    the entry's last job. :meth:`finish` puts the ids in before writing those.

    :meth:`prepare` reads which of the planned slots have a row already (an entry
    redefined in the minute it fired restarts its evaluation, so it plans that minute
    again): :meth:`slot` and :meth:`enqueue` refuse those, and the decisions after them
    see that they did not fire. Should the insert still meet a claimed row, :meth:`finish`
    raises :class:`_Claimed` and the chunk is rolled back.
    """

    def __init__(self, conn: Conn, prefix: str, node: str) -> None:
        self.conn = conn
        self.prefix = prefix
        self.node = node
        self._slots: list[_PlannedSlot] = []
        self._jobs: list[dict[str, Any]] = []
        self._claimed: set[tuple[str, datetime]] = set()
        self._last: dict[str, int] = {}
        self._deferred: dict[str, tuple[int, str]] = {}
        self._released: list[tuple[int, int]] = []  # (slot row id, job placeholder)

    def _job(self, row: Mapping[str, Any], slot_at: datetime, kind: str) -> int:
        name = row["name"]
        # The inserted rows are matched back by (entry, cron_at), which is unique here: a
        # follow-up's minute has its deferred row, so no slot of that minute is planned.
        self._jobs.append(entries.job_fields(row, name, slot_at, kind))
        placeholder = self._last[name] = -len(self._jobs)
        return placeholder

    async def prepare(
        self,
        follow_ups: Sequence[tuple[str, datetime]],
        planned: Sequence[tuple[str, datetime]],
    ) -> None:
        """Before any decision: release the (entry, slot) follow-ups :meth:`release` will
        be asked for, and read which ``planned`` slots were claimed before."""
        if planned:
            cur = await self.conn.execute(
                CLAIMED_SLOTS,
                {
                    "names": [name for name, _ in planned],
                    "slot_ats": [slot_at for _, slot_at in planned],
                },
                prepare=False,
            )
            self._claimed = {(r["entry_name"], r["slot_at"]) for r in await cur.fetchall()}
        if not follow_ups:
            return
        cur = await self.conn.execute(
            RELEASE_FOLLOW_UPS,
            {
                "names": [name for name, _ in follow_ups],
                "slot_ats": [slot_at for _, slot_at in follow_ups],
                "detail": Jsonb({"released_at": datetime.now(UTC).isoformat()}),
            },
            prepare=False,
        )
        self._deferred = {r["entry_name"]: (r["id"], r["kind"]) for r in await cur.fetchall()}

    async def slot(
        self, name: str, slot_at: datetime, kind: str, outcome: str, detail: dict[str, Any]
    ) -> bool:
        """Claim a slot that gets no job. False if it was claimed before."""
        if (name, slot_at) in self._claimed:
            return False
        self._slots.append(_PlannedSlot(name, slot_at, kind, outcome, detail, None, []))
        return True

    async def enqueue(
        self,
        row: Mapping[str, Any],
        slot_at: datetime,
        kind: str,
        outcome: str,
        detail: dict[str, Any],
        replacing: list[int],
    ) -> int | None:
        """Claim a slot and enqueue its job, cancelling ``replacing`` (the entry's active
        jobs, for cancel_previous) first. The job's placeholder; None if claimed before."""
        if (row["name"], slot_at) in self._claimed:
            return None
        job = self._job(row, slot_at, kind)
        self._slots.append(
            _PlannedSlot(row["name"], slot_at, kind, outcome, detail, job, list(replacing))
        )
        return job

    async def release(self, row: Mapping[str, Any], slot_at: datetime) -> int | None:
        """Enqueue the entry's deferred slot at ``slot_at``. The job's placeholder; None
        if the deferred row is gone (entry history pruned)."""
        found = self._deferred.pop(row["name"], None)
        if found is None:
            return None
        slot_id, kind = found
        job = self._job(row, slot_at, kind)
        self._released.append((slot_id, job))
        return job

    async def finish(self) -> dict[str, int]:
        """Write the chunk. Returns the newest job of each entry that enqueued one, for
        ``last_job_id``."""
        conn = self.conn
        ids: list[int] = []
        if self._jobs:
            jobs = self._jobs
            returned = conn.cursor(row_factory=tuple_row)
            await returned.execute(INSERT_JOBS, {"jobs": Jsonb(jobs)})
            inserted = {(name, at): int(job_id) for job_id, name, at in await returned.fetchall()}
            ids = [inserted[j["meta"]["cron_name"], j["meta"]["cron_at"]] for j in jobs]
            # What oban_jobs.notify sends for each insert, once per queue.
            await conn.execute(
                NOTIFY_EACH,
                {
                    "channel": oban_jobs.channel(self.prefix, "insert"),
                    "payloads": [
                        json.dumps({"queue": q}) for q in sorted({j["queue"] for j in jobs})
                    ],
                },
            )

        def real(job: int) -> int:
            return ids[-job - 1] if job < 0 else job

        # One statement for every job replaced in the chunk: the active ones read before
        # and those enqueued above by an earlier slot of the same entry (still available,
        # so always cancelled). A job is active for one entry only (its meta.cron_name).
        replaced = sorted({real(j) for slot in self._slots for j in slot.replacing})
        cancelled = (
            set(await oban_jobs.cancel_jobs(conn, self.prefix, replaced)) if replaced else set()
        )
        if self._slots:
            planned = []
            for slot in self._slots:
                detail = slot.detail
                if "active_jobs" in detail:
                    detail = {**detail, "active_jobs": [real(j) for j in detail["active_jobs"]]}
                if slot.replacing:
                    done = sorted(j for j in map(real, slot.replacing) if j in cancelled)
                    detail = {**detail, "cancelled_jobs": done}
                planned.append(
                    {
                        "name": slot.name,
                        "slot_at": slot.slot_at.isoformat(),
                        "kind": slot.kind,
                        "outcome": slot.outcome,
                        "job_id": None if slot.job is None else real(slot.job),
                        "detail": detail,
                    }
                )
            cur = await conn.execute(
                INSERT_SLOTS, {"claimed_by": self.node, "slots": Jsonb(planned)}
            )
            claimed = await cur.fetchone()
            if claimed is None or claimed["claimed"] != len(planned):
                raise _Claimed
        if self._released:
            await conn.execute(
                SET_SLOT_JOBS,
                {
                    "ids": [slot_id for slot_id, _ in self._released],
                    "job_ids": [real(job) for _, job in self._released],
                },
                prepare=False,
            )
        return {name: real(job) for name, job in self._last.items()}


class CronScheduler:
    """The scheduler of one node. Start/stop it like oban's loopers; see the module doc.

    ``database`` must be open while the scheduler runs (the runtime opens it). ``node``
    names this node in slot rows and coverage; ``prefix`` is oban's schema, for the
    channels of the insert notifications.
    """

    def __init__(
        self,
        database: Database,
        *,
        leader: LeaderLike,
        node: str,
        prefix: str = "public",
        clock: Clock | None = None,
        grace: timedelta = DEFAULT_GRACE,
        poll_interval: float = 1.0,
        chunk_size: int = 200,
    ) -> None:
        if poll_interval <= 0:
            raise InvalidArgument("poll_interval must be positive")
        if chunk_size < 1:
            raise InvalidArgument("chunk_size must be at least 1")
        if grace < timedelta(0):
            raise InvalidArgument("grace must not be negative")
        self.database = database
        self.node = node
        self.prefix = prefix
        self._leader = leader
        self._clock: Clock = clock or SystemClock()
        self._grace = grace
        self._poll_interval = poll_interval
        self._chunk_size = chunk_size
        self._expressions: dict[str, CronExpression] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._next: dict[str, _Cached] = {}
        self._last_minute: datetime | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_evaluation: Evaluation | None = None

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="oban-powertools-cron")

    async def stop(self) -> None:
        # Cancelling mid-transaction could strand a pooled connection, so the loop is
        # asked to stop at its next safe point and only cancelled if that takes too long.
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout=STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("cron scheduler on %s did not stop in time; cancelled", self.node)
        except asyncio.CancelledError:
            pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._tick()
            except asyncio.CancelledError:
                break
            except Exception as exc:
                # The minute stays undecided (no coverage was recorded for it): the next
                # tick evaluates it again, within the grace window as if it were late.
                log_error("cron scheduler on %s failed; retrying", self.node, error=exc)
            now = self._clock.now()
            await self._clock.sleep_until(
                floor_minute(now) + MINUTE, self._stopping, self._poll_interval
            )

    async def _tick(self) -> None:
        if not self._leader.is_leader:
            # Contiguity is only ours while we keep leading; another leader may run next.
            self._last_minute = None
            return
        now = self._clock.now()
        minute = floor_minute(now)
        if self._last_minute is not None and minute <= self._last_minute:
            return  # this minute is done (or the clock stepped back)
        last = self._last_minute
        if last is None:
            async with self.database.connection() as conn:
                cur = await conn.execute(LAST_COVERED)
                row = await cur.fetchone()
            last = row["last_minute"] if row else None
        live_from = minute
        if last is not None and minute - self._grace <= last < minute:
            live_from = floor_minute(last) + MINUTE
        evaluation = await self.evaluate(now=now, live_from=live_from)
        self._last_minute = minute
        self.last_evaluation = evaluation
        if evaluation.enqueued or evaluation.skipped or evaluation.deferred or evaluation.failed:
            logger.info(
                "cron %s: %d enqueued, %d skipped, %d deferred, %d failed in %.3fs",
                minute.isoformat(),
                evaluation.enqueued,
                evaluation.skipped,
                evaluation.deferred,
                len(evaluation.failed),
                evaluation.seconds,
            )

    # -- evaluation ---------------------------------------------------------------------

    async def evaluate(
        self, now: datetime | None = None, *, live_from: datetime | None = None
    ) -> Evaluation:
        """Decide every due minute up to ``now`` (default: the clock), leader or not.

        Minutes from ``live_from`` (default: the current minute) are ``scheduled``;
        earlier due minutes are catch-up. Safe to call from several nodes at once.
        """
        started = time.perf_counter()
        now = (now or self._clock.now()).astimezone(UTC)
        minute = floor_minute(now)
        live = minute if live_from is None else min(floor_minute(live_from), minute)
        evaluation = Evaluation(minute=minute, live_from=live)
        evaluation.resumed = await self._expire_pauses(now)
        candidates = await self._candidates(minute, evaluation)
        for start in range(0, len(candidates), self._chunk_size):
            chunk = candidates[start : start + self._chunk_size]
            await self._process(chunk, minute, live, evaluation)
        async with self.database.connection() as conn:
            await conn.execute(RECORD_COVERAGE, {"node": self.node, "first": live, "last": minute})
        evaluation.seconds = time.perf_counter() - started
        return evaluation

    def _parsed(self, expression: str, timezone: str) -> tuple[CronExpression, ZoneInfo]:
        expr = self._expressions.get(expression)
        if expr is None:
            expr = self._expressions[expression] = CronExpression.parse(expression)
        tz = self._zones.get(timezone)
        if tz is None:
            tz = self._zones[timezone] = load_timezone(timezone)
        return expr, tz

    async def _candidates(self, minute: datetime, evaluation: Evaluation) -> list[str]:
        """Names of unpaused entries with something to decide at ``minute``."""
        async with self.database.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(CANDIDATES)
            rows = await cur.fetchall()
        evaluation.examined = len(rows)
        found: list[str] = []
        seen: set[str] = set()
        for name, expression, timezone, through, follow_up in rows:
            seen.add(name)
            key = (expression, timezone, through)
            cached = self._next.get(name)
            if cached is None or cached.key != key:
                try:
                    expr, tz = self._parsed(expression, timezone)
                except ValueError as exc:
                    # Only a row written around CronEntrySpec gets here. It can never fire;
                    # say so once per definition instead of failing every minute.
                    logger.error("cron entry %r cannot be scheduled: %s", name, exc)
                    self._next[name] = _Cached(key, None, valid=False)
                    continue
                # next_fire after evaluated_through: the entry has work once it is <= now.
                upcoming = None if through is None else next_fire(expr, tz, through)
                cached = self._next[name] = _Cached(key, upcoming)
            if not cached.valid:
                continue
            if (
                through is None
                or follow_up is not None
                or (cached.next_fire is not None and cached.next_fire <= minute)
            ):
                found.append(name)
        if len(self._next) > len(seen):
            for gone in set(self._next) - seen:
                del self._next[gone]
        if len(self._expressions) > 2 * len(rows) + 100:
            # Redefined entries leave old parsed expressions behind; start the cache over.
            self._expressions.clear()
        return sorted(found)

    async def _process(
        self, names: Sequence[str], minute: datetime, live_from: datetime, ev: Evaluation
    ) -> None:
        try:
            ev.add(await self._claim_chunk(names, minute, live_from))
            return
        except Exception as exc:
            # One bad entry (or a deadlock with an operator's bulk lock) must not hold up
            # the others: retry each entry on its own once.
            logger.warning(
                "cron: claiming %d entries together failed (%s); retrying one by one",
                len(names),
                describe_error(exc),
            )
        for name in names:
            try:
                ev.add(await self._claim_chunk([name], minute, live_from))
            except Exception as exc:
                if transient(exc):
                    # Not the entry's fault, and the database may be back in a moment:
                    # recording its minutes as 'failed' would lose them for good. Stop the
                    # evaluation instead; nothing of this entry was committed, so the next
                    # one decides its minutes (within the grace window, as late ones).
                    raise
                await self._record_failure(name, minute, live_from, ev, exc)

    async def _claim_chunk(
        self, names: Sequence[str], minute: datetime, live_from: datetime
    ) -> Evaluation:
        """Claim ``names`` in one transaction (set-based, :class:`_Batch`); what it did,
        once committed."""
        part = Evaluation(minute=minute, live_from=live_from)
        async with self.database.transaction() as conn:
            await self._claim(
                conn, _Batch(conn, self.prefix, self.node), names, minute, live_from, part
            )
        return part

    async def _record_failure(
        self,
        name: str,
        minute: datetime,
        live_from: datetime,
        ev: Evaluation,
        error: BaseException,
    ) -> None:
        """Claim the entry's due minutes as 'failed' so the error is visible in its
        history and is not retried every minute. If even that fails (database down),
        nothing is recorded and the minutes are decided at the next evaluation."""
        log_error("cron: entry %r could not be scheduled at %s", name, minute, error=error)
        ev.failed.append(name)
        try:
            async with self.database.transaction() as conn:
                cur = await conn.execute(LOCK_ENTRIES, {"names": [name]})
                row = await cur.fetchone()
                if row is None or row["paused"]:
                    return
                expr, tz = self._parsed(row["expression"], row["timezone"])
                plan = plan_slots(
                    expr,
                    tz,
                    evaluated_through=row["evaluated_through"],
                    updated_at=row["updated_at"],
                    now_minute=minute,
                    live_from=live_from,
                    catch_up_policy=row["catch_up_policy"],
                    max_catch_up=row["max_catch_up"],
                )
                if plan is None:
                    return
                text = describe_error(error)
                for slot_at, kind, _late in plan.slots:
                    await conn.execute(
                        entries.INSERT_SLOT,
                        {
                            "name": name,
                            "slot_at": slot_at,
                            "kind": kind,
                            "outcome": "failed",
                            "job_id": None,
                            "claimed_by": self.node,
                            "detail": Jsonb({"error": text}),
                        },
                    )
                await conn.execute(
                    ADVANCE_ENTRIES,
                    _advance({name: (minute, None, None, row["follow_up_slot_at"])}),
                )
        except Exception as exc:
            log_error("cron: could not record the failure of %r", name, error=exc)

    async def _claim(
        self,
        conn: Conn,
        writer: _Batch,
        names: Sequence[str],
        minute: datetime,
        live_from: datetime,
        ev: Evaluation,
    ) -> None:
        cur = await conn.execute(LOCK_ENTRIES, {"names": list(names)})
        rows = await cur.fetchall()
        ev.locked += len(rows)
        work: list[tuple[dict[str, Any], SlotPlan | None]] = []
        for row in rows:
            if row["paused"]:
                continue  # paused since the unlocked read: the pause wins
            expr, tz = self._parsed(row["expression"], row["timezone"])
            # The next fire _candidates cached, if the locked row is still what it read.
            cached = self._next.get(row["name"])
            key = (row["expression"], row["timezone"], row["evaluated_through"])
            plan = plan_slots(
                expr,
                tz,
                evaluated_through=row["evaluated_through"],
                updated_at=row["updated_at"],
                now_minute=minute,
                live_from=live_from,
                catch_up_policy=row["catch_up_policy"],
                max_catch_up=row["max_catch_up"],
                first_due=cached.next_fire if cached is not None and cached.key == key else None,
            )
            if plan is None and row["follow_up_slot_at"] is None:
                continue
            work.append((row, plan))
        if not work:
            return
        active = await self._active_jobs(
            conn,
            [
                row
                for row, plan in work
                if row["overlap_policy"] != "allow"
                and (row["follow_up_slot_at"] is not None or (plan is not None and plan.slots))
            ],
        )
        # A pending follow-up is released once its entry has no active job (below).
        await writer.prepare(
            [
                (row["name"], row["follow_up_slot_at"])
                for row, _ in work
                if row["follow_up_slot_at"] is not None and not active.get(row["name"])
            ],
            [
                (row["name"], slot_at)
                for row, plan in work
                if plan is not None
                for slot_at in (
                    *(slot[0] for slot in plan.slots),
                    *((plan.skipped[0],) if plan.skipped is not None else ()),
                )
            ],
        )
        advance: dict[str, tuple[datetime, datetime | None, datetime | None]] = {}
        for row, plan in work:
            name = row["name"]
            jobs = active.get(name, [])
            follow_up: datetime | None = row["follow_up_slot_at"]
            last_slot: datetime | None = None
            if follow_up is not None and not jobs:
                job_id = await writer.release(row, follow_up)
                if job_id is not None:
                    jobs = [job_id]
                    last_slot = follow_up
                    ev.follow_ups += 1
                    ev.enqueued += 1
                follow_up = None
            if plan is not None:
                if plan.skipped is not None:
                    slot_at, detail = plan.skipped
                    if await writer.slot(name, slot_at, "catch_up", "skipped_catch_up", detail):
                        ev.skipped += 1
                for slot_at, kind, late in plan.slots:
                    detail = {"late": True} if late else {}
                    fired, follow_up = await self._place(
                        writer, row, slot_at, kind, detail, jobs, follow_up, ev
                    )
                    if fired:
                        last_slot = slot_at
            if plan is None and last_slot is None and follow_up == row["follow_up_slot_at"]:
                continue  # only waited for a follow-up that is still blocked: nothing to write
            through = plan.through if plan is not None else row["evaluated_through"]
            advance[name] = (through, last_slot, follow_up)
        last_jobs = await writer.finish()
        if not advance:
            return
        await conn.execute(
            ADVANCE_ENTRIES,
            _advance(
                {
                    name: (through, last_slot, last_jobs.get(name), follow_up)
                    for name, (through, last_slot, follow_up) in advance.items()
                }
            ),
        )

    async def _place(
        self,
        writer: _Batch,
        row: Mapping[str, Any],
        slot_at: datetime,
        kind: str,
        detail: dict[str, Any],
        jobs: list[int],
        follow_up: datetime | None,
        ev: Evaluation,
    ) -> tuple[bool, datetime | None]:
        """Claim one slot under the entry's overlap policy. ``jobs`` (the entry's active
        jobs) is updated in place. Returns (a job was enqueued, pending follow-up)."""
        name = row["name"]
        policy = row["overlap_policy"]
        if jobs and policy == "skip":
            detail = {**detail, "active_jobs": jobs[:20]}
            if await writer.slot(name, slot_at, kind, "skipped_overlap", detail):
                ev.skipped += 1
            return False, follow_up
        if jobs and policy == "queue_one":
            if follow_up is None:
                detail = {**detail, "active_jobs": jobs[:20]}
                if await writer.slot(name, slot_at, kind, "deferred", detail):
                    ev.deferred += 1
                    return False, slot_at
                return False, follow_up
            detail = {**detail, "active_jobs": jobs[:20], "pending_follow_up": _iso(follow_up)}
            if await writer.slot(name, slot_at, kind, "skipped_overlap", detail):
                ev.skipped += 1
            return False, follow_up
        replacing = bool(jobs) and policy == "cancel_previous"
        outcome = "replaced_previous" if replacing else "enqueued"
        job_id = await writer.enqueue(
            row, slot_at, kind, outcome, detail, list(jobs) if replacing else []
        )
        if job_id is None:
            return False, follow_up  # already claimed (by an earlier evaluation)
        if replacing:
            ev.replaced += 1
            jobs.clear()
        jobs.append(job_id)
        ev.enqueued += 1
        return True, follow_up

    async def _active_jobs(
        self, conn: Conn, rows: Sequence[Mapping[str, Any]]
    ) -> dict[str, list[int]]:
        """Active job ids per entry, for the entries whose overlap policy needs them."""
        if not rows:
            return {}
        active: dict[str, list[int]] = {}
        last_ids = {row["last_job_id"]: row["name"] for row in rows if row["last_job_id"]}
        if last_ids:
            cur = await conn.execute(ACTIVE_BY_ID, {"ids": list(last_ids)}, prepare=False)
            for found in await cur.fetchall():
                active[last_ids[found["id"]]] = [found["id"]]
        # cancel_previous must see every active job; the others only need a yes or no.
        rest = [
            row
            for row in rows
            if row["name"] not in active or row["overlap_policy"] == "cancel_previous"
        ]
        if rest:
            cur = await conn.execute(
                ACTIVE_BY_META,
                {
                    "queues": sorted({row["queue"] for row in rest}),
                    "names": [row["name"] for row in rest],
                },
                prepare=False,
            )
            wanted = {row["name"] for row in rest}
            for found in await cur.fetchall():
                if found["name"] in wanted:
                    ids = active.setdefault(found["name"], [])
                    if found["id"] not in ids:
                        ids.append(found["id"])
        return active

    async def _expire_pauses(self, now: datetime) -> list[str]:
        """Resume entries whose pause expired; each resume is audited with it."""
        async with self.database.transaction() as conn:
            cur = await conn.execute(EXPIRED_PAUSES, {"now": now})
            expired = {row["name"]: row["pause_expires_at"] for row in await cur.fetchall()}
            if not expired:
                return []
            changes = {name: await entries.resume_entry(conn, name) for name in sorted(expired)}
            resumed = [name for name, changed in changes.items() if changed]
            for name in resumed:
                changed = changes[name]
                assert changed is not None
                await write_event(
                    conn,
                    action="cron.resumed",
                    command="resume_cron_entry",
                    resource_type="cron_entry",
                    resource_id=name,
                    principal=SYSTEM_PRINCIPAL,
                    surface="system",
                    outcome="succeeded",
                    reason="pause expired",
                    before=changed.before,
                    after=changed.after,
                    detail={
                        "pause_expires_at": _iso(expired[name]),
                        "resumed_by_node": self.node,
                    },
                )
        for name in resumed:
            logger.info("cron entry %r resumed: its pause expired", name)
        return resumed
