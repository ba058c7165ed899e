"""Claiming a chunk of cron entries' due slots: the decisions and their set-based writes.

:class:`Claimer` locks a chunk of entries, plans each one's slots (:func:`~oban_powertools.
cron.slots.plan_slots`), decides them one slot at a time under the entry's overlap policy
(the decisions depend on the slots before), then writes the chunk's jobs, slot rows and
entry updates in a few statements (:class:`ChunkWriter`), all in the chunk's one
transaction. See :mod:`.scheduler` for why that makes every slot exactly-once.

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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb
from psycopg.types.string import TextLoader

from ..cron import entries
from ..cron.expression import CronExpression
from ..cron.slots import SlotPlan, iso_utc, plan_slots
from ..cron.timezones import load_timezone
from ..db import Conn, Database
from ..db.arrays import TextArray
from ..db.queries import Statements
from .chunk import ChunkWriter, JobTemplates, SlotClaimedMeanwhile, advance_params
from .cron_telemetry import report_chunk
from .failures import describe_error, log_error, transient

__all__ = ["ACTIVE_STATES", "Claimer", "EntryCache", "Evaluation", "NextFire"]

logger = logging.getLogger("oban_powertools.runtime.scheduler")

ACTIVE_STATES = ("available", "scheduled", "executing", "retryable")

Q = Statements(
    cron_entries="lock_entries advance_entries",
    oban_jobs="active_cron_jobs_by_id active_cron_jobs_by_entry",
)


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
class NextFire:
    key: tuple[str, str, datetime | None]
    next_fire: datetime | None
    valid: bool = True


class EntryCache:
    """Parsed expressions and time zones, and each entry's next fire time after its
    ``evaluated_through``, kept between evaluations (shared by the candidates pass and
    the claims)."""

    def __init__(self) -> None:
        self._expressions: dict[str, CronExpression] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self.next: dict[str, NextFire] = {}
        self.templates = JobTemplates()

    def parsed(self, expression: str, timezone: str) -> tuple[CronExpression, ZoneInfo]:
        expr = self._expressions.get(expression)
        if expr is None:
            expr = self._expressions[expression] = CronExpression.parse(expression)
        tz = self._zones.get(timezone)
        if tz is None:
            tz = self._zones[timezone] = load_timezone(timezone)
        return expr, tz

    def plan(
        self,
        row: Mapping[str, Any],
        minute: datetime,
        live_from: datetime,
        first_due: datetime | None = None,
    ) -> SlotPlan | None:
        """The slots a locked ``cron_entries`` row claims at ``minute``."""
        expr, tz = self.parsed(row["expression"], row["timezone"])
        return plan_slots(
            expr,
            tz,
            evaluated_through=row["evaluated_through"],
            updated_at=row["updated_at"],
            now_minute=minute,
            live_from=live_from,
            catch_up_policy=row["catch_up_policy"],
            max_catch_up=row["max_catch_up"],
            first_due=first_due,
        )

    def forget(self, seen: set[str], rows: int) -> None:
        """Drop what belongs to entries that are gone; start the expression cache over
        when redefined entries have left many old ones behind."""
        if len(self.next) > len(seen):
            for gone in set(self.next) - seen:
                del self.next[gone]
        if len(self._expressions) > 2 * rows + 100:
            self._expressions.clear()


def may_have_claimed_slots(row: Mapping[str, Any]) -> bool:
    """Whether a locked entry's planned minutes can already have slot rows.

    A slot is claimed only with its entry locked and ``evaluated_through`` advanced past
    it, so the minutes planned after ``evaluated_through`` are new unless the evaluation
    started over: a new or redefined entry (``evaluated_through`` NULL, planned from the
    current minute, which may have fired before the redefinition), or one moved back
    below a minute that fired. Looking up the others would cost a statement per chunk.
    """
    through = row["evaluated_through"]
    last = row["last_slot_at"]
    return through is None or (last is not None and last > through)


class Claimer:
    """Claims chunks of entries for one node (see the module docstring)."""

    def __init__(self, database: Database, *, prefix: str, node: str, cache: EntryCache) -> None:
        self.database = database
        self.prefix = prefix
        self.node = node
        self.cache = cache

    async def process(
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
        """Claim ``names`` in one transaction (set-based, :class:`ChunkWriter`); what it did,
        once committed.

        The slots claimed before are looked up only for entries that can have them (see
        :func:`may_have_claimed_slots`); should a write still meet one (a history edited by
        hand), the chunk is rolled back and decided again with every entry looked up.
        """
        for check_every in (False, True):
            part = Evaluation(minute=minute, live_from=live_from)
            try:
                async with self.database.transaction() as conn:
                    writer = ChunkWriter(conn, self.prefix, self.node, self.cache.templates)
                    await self._claim(conn, writer, names, minute, live_from, part, check_every)
                report_chunk(writer.decided, self.node, datetime.now(UTC))
                return part
            except SlotClaimedMeanwhile:
                if check_every:
                    raise
                logger.info("cron: a slot was claimed before; deciding the chunk again")
        raise AssertionError("unreachable")

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
                cur = await conn.execute(Q.lock_entries, {"names": [name]})
                row = await cur.fetchone()
                if row is None or row["paused"]:
                    return
                plan = self.cache.plan(row, minute, live_from)
                if plan is None:
                    return
                text = describe_error(error)
                for slot_at, kind, _late in plan.slots:
                    await conn.execute(
                        entries.Q.insert_slot,
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
                    Q.advance_entries,
                    advance_params({name: (minute, None, None, row["follow_up_slot_at"])}),
                )
        except Exception as exc:
            log_error("cron: could not record the failure of %r", name, error=exc)

    async def _claim(
        self,
        conn: Conn,
        writer: ChunkWriter,
        names: Sequence[str],
        minute: datetime,
        live_from: datetime,
        ev: Evaluation,
        check_every: bool = False,
    ) -> None:
        # args and job_options stay JSON text: JobTemplates parses a definition once.
        cur = conn.cursor()
        cur.adapters.register_loader("jsonb", TextLoader)
        await cur.execute(Q.lock_entries, {"names": TextArray(names)})
        rows = await cur.fetchall()
        ev.locked += len(rows)
        work: list[tuple[dict[str, Any], SlotPlan | None]] = []
        for row in rows:
            if row["paused"]:
                continue  # paused since the unlocked read: the pause wins
            # The next fire _candidates cached, if the locked row is still what it read.
            cached = self.cache.next.get(row["name"])
            key = (row["expression"], row["timezone"], row["evaluated_through"])
            plan = self.cache.plan(
                row,
                minute,
                live_from,
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
                if plan is not None and (check_every or may_have_claimed_slots(row))
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
                # A job of the same unique key counts as the entry's active job: the
                # follow-up waits for it as for the entry's own.
                held = await writer.unique_holder(row, follow_up, "scheduled")
                if held is not None:
                    jobs = [held]
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
        await writer.finish(advance)

    async def _place(
        self,
        writer: ChunkWriter,
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
            detail = {**detail, "active_jobs": jobs[:20], "pending_follow_up": iso_utc(follow_up)}
            if await writer.slot(name, slot_at, kind, "skipped_overlap", detail):
                ev.skipped += 1
            return False, follow_up
        replacing = bool(jobs) and policy == "cancel_previous"
        held = None if replacing else await writer.unique_holder(row, slot_at, kind)
        if held is not None:
            # The entry's worker is unique and another job holds the key: this slot's job
            # would be its duplicate (the insert would return that job), so it is skipped.
            detail = {**detail, "unique_held_by": held}
            if await writer.slot(name, slot_at, kind, "skipped_overlap", detail):
                ev.skipped += 1
            return False, follow_up
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
            cur = await conn.execute(
                Q.active_cron_jobs_by_id, {"ids": list(last_ids)}, prepare=False
            )
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
                Q.active_cron_jobs_by_entry,
                {
                    "queues": sorted({row["queue"] for row in rest}),
                    "names": TextArray(row["name"] for row in rest),
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
