"""The leader-run cron scheduler: every due minute of every entry becomes exactly one slot.

A :class:`CronScheduler` runs on every node and acts only while its node is oban's leader.
At every minute boundary (and as soon as it becomes leader) it *evaluates*: it decides,
for each entry that is not paused, every due minute in ``(evaluated_through, now]``
(slots are UTC minutes; see :mod:`oban_powertools.cron.firing` for how wall-clock time and DST map onto
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

The live window
===============

The live window is normally just the current minute. The loop widens it back to the last
minute any leader evaluated (from ``powertools_scheduler_coverage``) when that is at most
``grace`` ago, so a late tick or a quick leadership handover fires the minutes in between
as ``scheduled`` (with ``detail.late``) instead of treating them as downtime. Minutes
before the entry's last change (``updated_at``: pause, resume, redefinition) are never
live, since the entry may not have been runnable then. A new entry
(``evaluated_through`` NULL) starts at the current minute: no backfill.

What is decided where: :mod:`oban_powertools.cron.slots` plans an entry's due minutes
and its catch-up; :mod:`.claims` decides each slot under the entry's overlap policy;
:mod:`.chunk` writes a chunk's decisions.

Coverage and pause expiry
=========================

Each evaluation records the minutes it decided in ``powertools_scheduler_coverage``
(extending this node's latest span when contiguous), so a due minute without a slot
inside a span was decided (paused, skipped), and outside every span nobody looked.
Entries whose pause has expired are resumed first, each with a ``cron.resumed`` audit
event by the system principal in the same transaction.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from psycopg.rows import tuple_row

from .. import telemetry
from ..audit import write_event
from ..cron import entries
from ..cron.firing import next_fire
from ..cron.slots import MINUTE, SlotPlan, floor_minute, iso_utc, plan_slots
from ..db import Database
from ..db.queries import Statements
from ..errors import InvalidArgument
from ..seams import SYSTEM_PRINCIPAL
from .claims import ACTIVE_STATES, Claimer, EntryCache, Evaluation, NextFire
from .clock import Clock, LeaderLike, SystemClock
from .cron_telemetry import EVALUATED
from .loop import MinuteLoop

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

DEFAULT_GRACE = timedelta(minutes=3)

Q = Statements(
    cron_entries="candidates expired_pauses",
    scheduler_coverage="last_covered record_coverage",
)


class CronScheduler(MinuteLoop):
    """The scheduler of one node. Start/stop it like oban's loopers; see the module doc.

    ``database`` must be open while the scheduler runs (the runtime opens it). ``node``
    names this node in slot rows and coverage; ``prefix`` is oban's schema, for the
    channels of the insert notifications.
    """

    label = "cron scheduler"
    task_name = "oban-powertools-cron"

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
        super().__init__(node=node, clock=clock or SystemClock(), poll_interval=poll_interval)
        if chunk_size < 1:
            raise InvalidArgument("chunk_size must be at least 1")
        if grace < timedelta(0):
            raise InvalidArgument("grace must not be negative")
        self.database = database
        self.prefix = prefix
        self._leader = leader
        self._grace = grace
        self._chunk_size = chunk_size
        self._cache = EntryCache()
        self._claimer = Claimer(database, prefix=prefix, node=node, cache=self._cache)
        self._last_minute: datetime | None = None
        self.last_evaluation: Evaluation | None = None

    def _wake_at(self, now: datetime) -> datetime:
        return floor_minute(now) + MINUTE

    async def _tick(self) -> None:
        # A failed tick records no coverage for its minute: the next tick evaluates it
        # again, within the grace window as if it were late.
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
                cur = await conn.execute(Q.last_covered)
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
            await self._claimer.process(chunk, minute, live, evaluation)
        async with self.database.connection() as conn:
            await conn.execute(
                Q.record_coverage, {"node": self.node, "first": live, "last": minute}
            )
        evaluation.seconds = time.perf_counter() - started
        telemetry.emit(
            EVALUATED,
            {
                "duration": int(evaluation.seconds * 1e9),
                "examined": evaluation.examined,
                "enqueued": evaluation.enqueued,
                "skipped": evaluation.skipped,
                "deferred": evaluation.deferred,
                "failed": len(evaluation.failed),
            },
            {"minute": iso_utc(minute), "node": self.node},
        )
        return evaluation

    async def _candidates(self, minute: datetime, evaluation: Evaluation) -> list[str]:
        """Names of unpaused entries with something to decide at ``minute``."""
        async with self.database.connection() as conn:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(Q.candidates)
            rows = await cur.fetchall()
        evaluation.examined = len(rows)
        found: list[str] = []
        seen: set[str] = set()
        for name, expression, timezone, through, follow_up in rows:
            seen.add(name)
            key = (expression, timezone, through)
            cached = self._cache.next.get(name)
            if cached is None or cached.key != key:
                try:
                    expr, tz = self._cache.parsed(expression, timezone)
                except ValueError as exc:
                    # Only a row written around CronEntrySpec gets here. It can never fire;
                    # say so once per definition instead of failing every minute.
                    logger.error("cron entry %r cannot be scheduled: %s", name, exc)
                    self._cache.next[name] = NextFire(key, None, valid=False)
                    continue
                # next_fire after evaluated_through: the entry has work once it is <= now.
                upcoming = None if through is None else next_fire(expr, tz, through)
                cached = self._cache.next[name] = NextFire(key, upcoming)
            if not cached.valid:
                continue
            if (
                through is None
                or follow_up is not None
                or (cached.next_fire is not None and cached.next_fire <= minute)
            ):
                found.append(name)
        self._cache.forget(seen, len(rows))
        return sorted(found)

    async def _expire_pauses(self, now: datetime) -> list[str]:
        """Resume entries whose pause expired; each resume is audited with it."""
        async with self.database.transaction() as conn:
            cur = await conn.execute(Q.expired_pauses, {"now": now})
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
                        "pause_expires_at": iso_utc(expired[name]),
                        "resumed_by_node": self.node,
                    },
                )
        for name in resumed:
            logger.info("cron entry %r resumed: its pause expired", name)
        return resumed
