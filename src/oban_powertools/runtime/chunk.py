"""A chunk of cron slots written set-based: jobs, notifications, cancellations, slot rows
and the entries' bookkeeping.

:class:`~.claims.Claimer` decides a chunk's slots one at a time and hands each decision to
a :class:`ChunkWriter`, which writes them all at the end in two or three statements
instead of about six per slot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..cron import entries
from ..cron.slots import iso_minute, iso_utc
from ..db import Conn, oban_jobs
from ..db.arrays import TextArray
from ..db.queries import Statements, StatementsInSchema
from ..unique.workers import unique_meta, worker_unique

__all__ = [
    "ChunkWriter",
    "DecidedSlot",
    "JobTemplates",
    "SlotClaimedMeanwhile",
    "advance_params",
]

# The rows of a chunk travel as one JSON array each: one json.dumps in Python instead of
# a dump and an escape per array element, which cost more than the statements themselves.
Q = Statements(
    oban_jobs="insert_cron_jobs",
    cron_slots="claimed_slots write_chunk release_follow_ups",
)
Q_IN_SCHEMA = StatementsInSchema(unique="holders expire_holders")
# The index a slot claimed twice violates (migration 0001).
ONCE_INDEX = "powertools_cron_slots_once_index"

# What an entry's bookkeeping becomes: (evaluated_through, last slot, last job, follow-up).
type Advance = tuple[datetime, datetime | None, int | None, datetime | None]


def advance_params(changes: Mapping[str, Advance]) -> dict[str, Any]:
    """The entry updates of cron_entries.advance_entries (and of write_chunk)."""
    return {
        "names": TextArray(changes),
        "entries": Jsonb(
            [
                {
                    "name": name,
                    "through": iso_utc(through),
                    "last_slot_at": iso_utc(last_slot),
                    "last_job": last_job,
                    "follow_up": iso_utc(follow_up),
                }
                for name, (through, last_slot, last_job, follow_up) in changes.items()
            ]
        ),
    }


class JobTemplates:
    """The columns an entry's jobs share (:func:`~oban_powertools.cron.entries.job_base`),
    kept between evaluations by the definition they come from.

    The scheduler reads ``args`` and ``job_options`` as JSON text (see
    :meth:`~.claims.Claimer`), so a locked row costs no JSON parsing unless its
    definition is new: parsing two documents per row was a fifth of the Python of a top
    of the hour. The parsed documents are shared by every job of the definition and never
    changed.
    """

    def __init__(self) -> None:
        self._bases: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def base(self, row: Mapping[str, Any]) -> dict[str, Any]:
        key = (row["worker"], row["queue"], row["args"], row["job_options"])
        found = self._bases.get(key)
        if found is None:
            if len(self._bases) > 20_000:
                self._bases.clear()  # redefinitions left many behind; start over
            template = {
                "worker": key[0],
                "queue": key[1],
                "args": json.loads(key[2]),
                "job_options": json.loads(key[3]),
            }
            found = self._bases[key] = entries.job_base(template)
        return found


class SlotClaimedMeanwhile(Exception):
    """A slot that :class:`ChunkWriter` wrote had been claimed meanwhile; the chunk rolls back."""


@dataclass(frozen=True, slots=True)
class DecidedSlot:
    """One slot a committed chunk decided (``released``: a deferred follow-up enqueued)."""

    entry: str
    slot_at: datetime
    kind: str
    outcome: str
    job_id: int | None


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

    def __init__(self, conn: Conn, prefix: str, node: str, templates: JobTemplates) -> None:
        self.conn = conn
        self._templates = templates
        self.prefix = prefix
        self.node = node
        self._slots: list[_PlannedSlot] = []
        self._jobs: list[dict[str, Any]] = []
        self._claimed: set[tuple[str, datetime]] = set()
        self._last: dict[str, int] = {}
        self._deferred: dict[str, tuple[int, str]] = {}
        self._released: list[tuple[int, int]] = []  # (slot row id, job placeholder)
        self._released_slots: list[tuple[str, datetime, str]] = []  # (entry, slot, kind)
        # What finish() wrote, for the telemetry reported once the chunk commits.
        self.decided: list[DecidedSlot] = []
        # Unique keys of the entries' workers and the job holding each (a placeholder
        # once this chunk enqueues it), None when free.
        self._held: dict[str, int | None] = {}

    def _fields(self, row: Mapping[str, Any], slot_at: datetime, kind: str) -> dict[str, Any]:
        # entries.job_fields, with the columns but meta computed once per definition.
        fields = {
            **self._templates.base(row),
            "meta": entries.job_meta(row["name"], row["expression"], slot_at, kind),
        }
        # cancel_previous keeps one active job per entry by cancelling the last one after
        # inserting the next, which a unique key held by the last one would refuse: such
        # entries' jobs are not made unique.
        if row["overlap_policy"] == "cancel_previous":
            return fields
        spec = worker_unique(fields["worker"])
        if spec is not None:
            fields["meta"] = unique_meta(
                spec,
                worker=fields["worker"],
                queue=fields["queue"],
                args=fields["args"],
                meta=fields["meta"],
            )
        return fields

    def _job(self, row: Mapping[str, Any], slot_at: datetime, kind: str) -> int:
        name = row["name"]
        # The inserted rows are matched back by (entry, cron_at), which is unique here: a
        # follow-up's minute has its deferred row, so no slot of that minute is planned.
        fields = self._fields(row, slot_at, kind)
        self._jobs.append(fields)
        placeholder = self._last[name] = -len(self._jobs)
        if "unique_key" in fields["meta"]:
            self._held[fields["meta"]["unique_key"]] = placeholder
        return placeholder

    async def unique_holder(
        self, row: Mapping[str, Any], slot_at: datetime, kind: str
    ) -> int | None:
        """The job holding the unique key the entry's job for ``slot_at`` would take (its
        worker declares ``unique``), or None: that job would be a duplicate, and the slot
        is skipped as an overlap. A holder whose period is over gives the key up."""
        fields = self._fields(row, slot_at, kind)
        key = fields["meta"].get("unique_key")
        if key is None:
            return None
        if key not in self._held:
            period = fields["meta"]["unique"]["period"]
            cur = await self.conn.execute(
                Q_IN_SCHEMA.holders.at(self.prefix), {"keys": [key], "periods": [period]}
            )
            holder = await cur.fetchone()
            if holder is not None and holder["expired"]:
                await self.conn.execute(
                    Q_IN_SCHEMA.expire_holders.at(self.prefix), {"ids": [holder["id"]]}
                )
                holder = None
            self._held[key] = None if holder is None else int(holder["id"])
        return self._held[key]

    async def prepare(
        self,
        follow_ups: Sequence[tuple[str, datetime]],
        planned: Sequence[tuple[str, datetime]],
    ) -> None:
        """Before any decision: release the (entry, slot) follow-ups :meth:`release` will
        be asked for, and read which ``planned`` slots were claimed before."""
        if planned:
            cur = await self.conn.execute(
                Q.claimed_slots,
                {
                    "names": TextArray(name for name, _ in planned),
                    "slot_ats": [slot_at for _, slot_at in planned],
                },
                prepare=False,
            )
            self._claimed = {(r["entry_name"], r["slot_at"]) for r in await cur.fetchall()}
        if not follow_ups:
            return
        cur = await self.conn.execute(
            Q.release_follow_ups,
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
        self._released_slots.append((row["name"], slot_at, kind))
        return job

    async def finish(
        self, advance: Mapping[str, tuple[datetime, datetime | None, datetime | None]]
    ) -> None:
        """Write the chunk, and ``advance`` the entries: (evaluated_through, last slot,
        follow-up) each; their ``last_job_id`` is the newest job each enqueued here."""
        conn = self.conn
        ids: list[int] = []
        if self._jobs:
            jobs = self._jobs
            returned = conn.cursor(row_factory=tuple_row)
            await returned.execute(
                Q.insert_cron_jobs,
                {"jobs": Jsonb(jobs), "channel": oban_jobs.channel(self.prefix, "insert")},
            )
            inserted = {(name, at): int(job_id) for job_id, name, at in await returned.fetchall()}
            if len(inserted) != len(jobs):
                # A unique key was taken after unique_holder looked: decide again.
                raise SlotClaimedMeanwhile
            ids = [inserted[j["meta"]["cron_name"], j["meta"]["cron_at"]] for j in jobs]

        def real(job: int) -> int:
            return ids[-job - 1] if job < 0 else job

        # One statement for every job replaced in the chunk: the active ones read before
        # and those enqueued above by an earlier slot of the same entry (still available,
        # so always cancelled). A job is active for one entry only (its meta.cron_name).
        replaced = sorted({real(j) for slot in self._slots for j in slot.replacing})
        cancelled = (
            set(await oban_jobs.cancel_jobs(conn, self.prefix, replaced)) if replaced else set()
        )
        planned = []
        for slot in self._slots:
            detail = slot.detail
            if "active_jobs" in detail:
                detail = {**detail, "active_jobs": [real(j) for j in detail["active_jobs"]]}
            if "unique_held_by" in detail:
                detail = {**detail, "unique_held_by": real(detail["unique_held_by"])}
            if slot.replacing:
                done = sorted(j for j in map(real, slot.replacing) if j in cancelled)
                detail = {**detail, "cancelled_jobs": done}
            planned.append(
                {
                    "name": slot.name,
                    "slot_at": iso_minute(slot.slot_at),
                    "kind": slot.kind,
                    "outcome": slot.outcome,
                    "job_id": None if slot.job is None else real(slot.job),
                    "detail": detail,
                }
            )
        self.decided = [
            DecidedSlot(
                s.name, s.slot_at, s.kind, s.outcome, None if s.job is None else real(s.job)
            )
            for s in self._slots
        ] + [
            DecidedSlot(name, slot_at, kind, "released", real(job))
            for (name, slot_at, kind), (_, job) in zip(
                self._released_slots, self._released, strict=True
            )
        ]
        if not (planned or self._released or advance):
            return
        last_jobs = {name: real(job) for name, job in self._last.items()}
        params = {
            "claimed_by": self.node,
            "slots": Jsonb(planned),
            "released_ids": [slot_id for slot_id, _ in self._released],
            "released_jobs": [real(job) for _, job in self._released],
            **advance_params(
                {
                    name: (through, last_slot, last_jobs.get(name), follow_up)
                    for name, (through, last_slot, follow_up) in advance.items()
                }
            ),
        }
        try:
            cur = await conn.execute(Q.write_chunk, params)
        except UniqueViolation as exc:
            if exc.diag.constraint_name != ONCE_INDEX:
                raise
            raise SlotClaimedMeanwhile from exc  # the transaction is aborted: roll back
        claimed = await cur.fetchone()
        if claimed is None or claimed["claimed"] != len(planned):
            raise SlotClaimedMeanwhile
