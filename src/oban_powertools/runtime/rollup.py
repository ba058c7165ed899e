"""The job rollup: per minute and queue, what finished and how long jobs waited.

The overview's and the queue pages' charts read ``powertools_job_rollups`` (migration
0011), never ``oban_jobs``: a page costs the same at 10M jobs as at 10. oban's leader
writes the rows. A :class:`JobRollup` runs on every node with the cron scheduler and acts
only while its node leads: a few seconds after each minute boundary (``settle``, so the
acks of the minute's last jobs have committed) it aggregates every minute that closed
since the last one written, and prunes rows older than ``retention``.

What one minute counts, per queue (``aggregate_minutes`` in ``db/queries/job_rollups.sql``):

* ``completed``, ``discarded``, ``cancelled``: jobs that reached that state in the minute
  (oban's ``completed_at`` / ``discarded_at`` / ``cancelled_at`` partial indexes);
* ``retried``: attempts that errored in the minute and were retried, by the time of
  their entry in ``errors`` -- counted even when a later attempt succeeded. The error of a
  final attempt (the one that discarded or cancelled the job) is not counted again, so
  failures are ``discarded + retried``;
* queue wait: for attempts that started in the minute, ``attempted_at - scheduled_at``
  (count, sum and maximum in milliseconds), whatever the job's state now.

Each pass writes only minutes that closed, from rows it can still see, so it has to run
soon after the minute: oban's pruner deletes finished jobs after its ``max_age``, and a
later attempt overwrites a job's ``attempted_at`` (the wait of the earlier attempt is then
gone). Jobs found through Powertools' ``(state, attempted_at)`` index (executing,
retryable) are read back to ``lookback`` seconds before the minute: a retried failure of
an attempt that started longer ago and still waits to retry is not counted, nor one whose
job was since snoozed or retried by hand (both leave the indexed states).

A pass locks the one progress row, deletes the rows of its minutes and writes them again,
so two leaders (a handover) or a re-run never count a minute twice. After downtime it
catches up at most ``catch_up`` (default a day), oldest minutes first, in chunks of an
hour; older minutes stay empty. The very first pass writes the last hour.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .. import telemetry
from ..db import Conn, Database
from ..db.queries import Statements
from ..errors import InvalidArgument
from .clock import Clock, LeaderLike, SystemClock
from .loop import MinuteLoop

__all__ = ["DEFAULT_RETENTION", "TELEMETRY_EVENT", "JobRollup", "RollupPass", "aggregate"]

logger = logging.getLogger(__name__)

WRITTEN = telemetry.declare(
    "oban_powertools.rollup.written",
    measurements=("minutes", "rows", "pruned", "duration"),
    metadata=("node", "first", "through"),
)
TELEMETRY_EVENT = WRITTEN.name
MINUTE = timedelta(minutes=1)
DEFAULT_RETENTION = timedelta(days=8)
DEFAULT_CATCH_UP = timedelta(hours=24)
DEFAULT_LOOKBACK = timedelta(minutes=15)
DEFAULT_SETTLE = timedelta(seconds=5)
CHUNK = timedelta(hours=1)

Q = Statements(
    job_rollups="lock_progress record_progress clear_minutes aggregate_minutes prune_rollups",
)


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def naive(value: datetime) -> datetime:
    """UTC without a zone, as oban's timestamp columns hold it."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


@dataclass(frozen=True, slots=True)
class RollupPass:
    """What one pass wrote: the minutes [first, through) and the rows pruned."""

    first: datetime | None
    through: datetime | None
    minutes: int
    rows: int
    pruned: int
    seconds: float


async def aggregate(
    conn: Conn,
    first: datetime,
    through: datetime,
    *,
    now: datetime,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> int:
    """Recompute the minutes [first, through) and overwrite their rows; the rows written.
    Idempotent: running it again over the same jobs writes the same rows."""
    lo, hi = naive(floor_minute(first)), naive(floor_minute(through))
    if hi <= lo:
        return 0
    # Jobs attempted in the span may finish later; read their ends up to now, but not
    # past ``lookback`` after the span (a catch-up chunk need not read the whole day).
    upper = min(naive(now), hi + lookback)
    await conn.execute(Q.clear_minutes, {"from": lo, "to": hi})
    cur = await conn.execute(
        Q.aggregate_minutes,
        {"from": lo, "to": hi, "upper": upper, "lookback": lookback.total_seconds()},
    )
    return len(await cur.fetchall())


class JobRollup(MinuteLoop):
    """The rollup loop of one node. Start/stop it with the scheduler; see the module doc."""

    label = "job rollup"
    task_name = "oban-powertools-rollup"

    def __init__(
        self,
        database: Database,
        *,
        leader: LeaderLike,
        node: str,
        clock: Clock | None = None,
        retention: timedelta = DEFAULT_RETENTION,
        catch_up: timedelta = DEFAULT_CATCH_UP,
        lookback: timedelta = DEFAULT_LOOKBACK,
        settle: timedelta = DEFAULT_SETTLE,
        poll_interval: float = 1.0,
    ) -> None:
        for name, value in (("retention", retention), ("catch_up", catch_up)):
            if value < MINUTE:
                raise InvalidArgument(f"rollup {name} must be at least a minute")
        if lookback < timedelta(0) or settle < timedelta(0):
            raise InvalidArgument("rollup lookback and settle must not be negative")
        super().__init__(node=node, clock=clock or SystemClock(), poll_interval=poll_interval)
        self.database = database
        self.retention = retention
        self.catch_up = catch_up
        self.lookback = lookback
        self.settle = settle
        self._leader = leader
        self.last_pass: RollupPass | None = None

    async def _tick(self) -> None:
        if self._leader.is_leader:
            # A failed pass committed nothing: the next pass covers these minutes too.
            await self.run_pass()

    def _wake_at(self, now: datetime) -> datetime:
        # The next minute boundary plus the settle time, so that minute is closed.
        return floor_minute(now - self.settle) + MINUTE + self.settle

    async def run_pass(self, now: datetime | None = None) -> RollupPass:
        """Write every minute closed (``settle`` ago) since the last written one, then
        prune; leader or not (the loop asks). Safe to run concurrently with another."""
        now = now or self._clock.now()
        started = time.monotonic()
        through = floor_minute(now - self.settle)
        oldest = through - self.catch_up
        first: datetime | None = None
        minutes = rows = 0
        chunk_from: datetime | None = None
        while True:
            # One transaction per chunk: the lock is held for an hour's worth at most, and
            # what is committed stays written if a later chunk fails.
            async with self.database.transaction() as conn:
                cur = await conn.execute(Q.lock_progress)
                row = await cur.fetchone()
                stored = row["written_through"] if row else None
                written = stored.replace(tzinfo=UTC) if stored else None
                # A first pass (a fresh install) fills the last hour: the charts then
                # show it at once, and no first pass reads a whole day.
                chunk_from = max(written, oldest) if written else through - CHUNK
                if chunk_from >= through:
                    break
                chunk_to = min(chunk_from + CHUNK, through)
                rows += await aggregate(conn, chunk_from, chunk_to, now=now, lookback=self.lookback)
                await conn.execute(
                    Q.record_progress, {"through": naive(chunk_to), "node": self.node}
                )
            first = first or chunk_from
            minutes += int((chunk_to - chunk_from) / MINUTE)
        async with self.database.connection() as conn:
            cur = await conn.execute(Q.prune_rollups, {"retention": self.retention.total_seconds()})
            pruned = cur.rowcount
        done = RollupPass(
            first, through if minutes else None, minutes, rows, pruned, time.monotonic() - started
        )
        self.last_pass = done
        if minutes:
            telemetry.emit(
                WRITTEN,
                {
                    "minutes": minutes,
                    "rows": rows,
                    "pruned": pruned,
                    "duration": round(done.seconds * 1e9),
                },
                {"node": self.node, "first": first, "through": through},
            )
        return done
