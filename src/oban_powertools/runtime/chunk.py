"""A chunk of cron slots written set-based: jobs, notifications, cancellations, slot rows.

:class:`~.claims.Claimer` decides a chunk's slots one at a time and hands each decision to
a :class:`ChunkWriter`, which writes them all at the end in a handful of statements
instead of about six per slot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..cron import entries
from ..db import Conn, oban_jobs
from ..db.queries import sql

__all__ = ["ChunkWriter", "SlotClaimedMeanwhile"]

# The rows of a chunk travel as one JSON array each: one json.dumps in Python instead of
# a dump and an escape per array element, which cost more than the statements themselves.
INSERT_JOBS = sql("oban_jobs", "insert_cron_jobs")
NOTIFY_EACH = sql("oban_jobs", "notify_each")
CLAIMED_SLOTS = sql("cron_slots", "claimed_slots")
INSERT_SLOTS = sql("cron_slots", "insert_slots")
RELEASE_FOLLOW_UPS = sql("cron_slots", "release_follow_ups")
SET_SLOT_JOBS = sql("cron_slots", "set_slot_jobs")


class SlotClaimedMeanwhile(Exception):
    """A slot that :class:`ChunkWriter` wrote had been claimed meanwhile; the chunk rolls back."""


@dataclass(slots=True)
class _PlannedSlot:
    name: str
    slot_at: datetime
    kind: str
    outcome: str
    detail: dict[str, Any]
    job: int | None  # a placeholder (see ChunkWriter)
    replacing: list[int]


class ChunkWriter:
    """A chunk's decisions, collected and written by :meth:`finish` in a handful of
    set-based statements (jobs, one notification per queue, cancellations, slot rows)
    instead of about six per slot.

    Until then a new job is known by a placeholder, -1 for the first, -2 for the second
    (oban's ids are positive), wherever a decision uses it: the active jobs a later slot
    of the entry sees (``active_jobs`` in its detail), the jobs cancel_previous replaces,
    the entry's last job. :meth:`finish` puts the ids in before writing those.

    :meth:`prepare` reads which of the slots it is asked about have a row already (an
    entry redefined in the minute it fired restarts its evaluation, so it plans that
    minute again): :meth:`slot` and :meth:`enqueue` refuse those, and the decisions after
    them see that they did not fire. Should the insert still meet a claimed row (one it
    was not asked about), :meth:`finish` raises :class:`SlotClaimedMeanwhile` and the
    chunk is rolled back, to be decided again with every slot asked about.
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
                raise SlotClaimedMeanwhile
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
