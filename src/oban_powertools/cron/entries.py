"""Cron entries in the database: declaring, reading, pausing and resuming them.

Pause and resume bump ``version``, the value drift detection compares, so a preview made
before someone else changed the entry cannot be confirmed against the new state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ..db import Conn
from ..db.queries import Statements
from ..errors import CronEntryError
from ..seams import Principal
from .expression import CronExpression
from .slots import iso_minute
from .timezones import load_timezone

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
OVERLAP_POLICIES = ("allow", "skip", "queue_one", "cancel_previous")
CATCH_UP_POLICIES = ("none", "latest", "all")

Q = Statements(
    cron_entries=(
        "entry_snapshots entry_snapshots_for_update set_paused confirm_set_paused"
        " store_pause_preview entry_job_template record_last_job restart_evaluation upsert_entry"
        " clock_now"
    ),
    cron_slots="insert_slot",
)


@dataclass(frozen=True)
class CronEntrySpec:
    """A cron entry as declared in code or created at runtime (validated on creation)."""

    name: str
    worker: str
    expression: str
    queue: str = "default"
    timezone: str = "Etc/UTC"
    args: Mapping[str, Any] = field(default_factory=dict)
    overlap_policy: str = "allow"
    catch_up_policy: str = "none"
    max_catch_up: int = 10
    priority: int = 0
    max_attempts: int = 20
    tags: Sequence[str] = ()
    source: str = "code"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise CronEntryError(
                f"cron entry name {self.name!r} must be 1-120 letters, digits, '_', '.', ':' or '-'"
            )
        CronExpression.parse(self.expression)
        load_timezone(self.timezone)
        if self.overlap_policy not in OVERLAP_POLICIES:
            raise CronEntryError(
                f"unknown overlap policy {self.overlap_policy!r}; use one of "
                + ", ".join(OVERLAP_POLICIES)
            )
        if self.catch_up_policy not in CATCH_UP_POLICIES:
            raise CronEntryError(
                f"unknown catch-up policy {self.catch_up_policy!r}; use one of "
                + ", ".join(CATCH_UP_POLICIES)
            )
        if not 1 <= self.max_catch_up <= 1000:
            raise CronEntryError("max_catch_up must be between 1 and 1000")
        if not self.worker or len(self.worker) > 255:
            raise CronEntryError("worker must be a non-empty worker name")
        if not self.queue or len(self.queue) > 255:
            raise CronEntryError("queue must be a non-empty queue name")
        if self.source not in ("code", "runtime"):
            raise CronEntryError("source must be 'code' or 'runtime'")
        if not 0 <= self.priority <= 9:
            raise CronEntryError("priority must be between 0 and 9")
        if not 1 <= self.max_attempts <= 32767:
            raise CronEntryError("max_attempts must be between 1 and 32767")


async def upsert_entry(conn: Conn, spec: CronEntrySpec) -> None:
    """Create or update an entry's definition. Pause state and history are kept."""
    await conn.execute(
        Q.upsert_entry,
        {
            "name": spec.name,
            "source": spec.source,
            "worker": spec.worker,
            "queue": spec.queue,
            "args": Jsonb(dict(spec.args)),
            "job_options": Jsonb(
                {
                    "priority": spec.priority,
                    "max_attempts": spec.max_attempts,
                    "tags": list(spec.tags),
                }
            ),
            "expression": spec.expression,
            "timezone": spec.timezone,
            "overlap_policy": spec.overlap_policy,
            "catch_up_policy": spec.catch_up_policy,
            "max_catch_up": spec.max_catch_up,
            "metadata": Jsonb(dict(spec.metadata)),
        },
    )


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


async def snapshot_entries(
    conn: Conn, names: Sequence[str], *, lock: bool
) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(
        Q.entry_snapshots_for_update if lock else Q.entry_snapshots, {"names": list(names)}
    )
    return {row["name"]: _jsonable(row) for row in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class Changed:
    """An entry's snapshot before and after a pause or resume."""

    before: dict[str, Any]
    after: dict[str, Any]


async def set_paused(
    conn: Conn,
    name: str,
    *,
    pause: bool,
    by: Principal | None = None,
    reason: str | None = None,
    expires_at: datetime | None = None,
) -> Changed | None:
    """Pause (``by``, ``reason``, ``expires_at``) or resume an entry outside the action
    pipeline; None if the entry is missing or already so."""
    cur = await conn.execute(Q.set_paused, set_paused_params(name, pause, by, reason, expires_at))
    row = await cur.fetchone()
    if row is None:
        return None
    return Changed(dict(row["before"]), dict(row["after"]))


def set_paused_params(
    name: str,
    pause: bool,
    by: Principal | None,
    reason: str | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """The parameters of ``set_paused`` and ``confirm_set_paused``; a resume clears the pause's
    who, why and until when."""
    return {
        "name": name,
        "pause": pause,
        "by_id": by.id if pause and by else None,
        "by_label": by.label if pause and by else None,
        "reason": reason if pause else None,
        "expires_at": expires_at if pause else None,
    }


async def pause_entry(
    conn: Conn, name: str, by: Principal, reason: str | None, expires_at: datetime | None
) -> Changed | None:
    """Pause; None if the entry is missing or already paused."""
    return await set_paused(conn, name, pause=True, by=by, reason=reason, expires_at=expires_at)


async def resume_entry(conn: Conn, name: str) -> Changed | None:
    """Resume; None if the entry is missing or not paused."""
    return await set_paused(conn, name, pause=False)


def job_meta(name: str, expression: str, slot_at: datetime, kind: str) -> dict[str, Any]:
    """The meta every cron job carries: oban's keys plus the entry name and slot kind."""
    return {
        "cron": True,
        "cron_at": iso_minute(slot_at),
        "cron_expr": expression,
        "cron_name": name,
        "cron_slot_kind": kind,
    }


def job_base(template: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of every job of the entry but its meta, from its row (``worker``,
    ``queue``, ``args``, ``job_options``): the same for each slot, so the scheduler
    computes them once per definition (see :func:`job_fields`)."""
    options = template["job_options"]
    return {
        "worker": template["worker"],
        "queue": template["queue"],
        "args": template["args"],
        "priority": int(options.get("priority", 0)),
        "max_attempts": int(options.get("max_attempts", 20)),
        "tags": sorted({t.lower() for t in options.get("tags", [])}),
    }


def job_fields(
    template: Mapping[str, Any], name: str, slot_at: datetime, kind: str
) -> dict[str, Any]:
    """The columns of the entry's job for one slot, from its row (``worker``, ``queue``,
    ``args``, ``job_options``, ``expression``): the one place both the slot-by-slot and
    the scheduler's set-based insert take them from (the latter with :func:`job_base`
    cached), so their jobs are identical."""
    return {**job_base(template), "meta": job_meta(name, template["expression"], slot_at, kind)}


async def enqueue_for_entry(
    conn: Conn, prefix: str, name: str, slot_at: datetime, kind: str
) -> int:
    """Insert the entry's job for one slot (the slot row is the caller's business)."""
    from ..db import oban_jobs

    cur = await conn.execute(Q.entry_job_template, {"name": name})
    row = await cur.fetchone()
    if row is None:
        raise CronEntryError(f"no cron entry {name!r}")
    job_id = await oban_jobs.insert_job(conn, prefix, **job_fields(row, name, slot_at, kind))
    await conn.execute(Q.record_last_job, {"name": name, "job_id": job_id})
    return job_id


async def run_now(conn: Conn, prefix: str, name: str, claimed_by: str) -> int:
    """An operator's run outside the schedule: a job and a 'manual' slot row."""
    cur = await conn.execute(Q.clock_now)
    now_row = await cur.fetchone()
    assert now_row is not None
    now: datetime = now_row["now"]
    job_id = await enqueue_for_entry(conn, prefix, name, now, "manual")
    await conn.execute(
        Q.insert_slot,
        {
            "name": name,
            "slot_at": now,
            "kind": "manual",
            "outcome": "enqueued",
            "job_id": job_id,
            "claimed_by": claimed_by,
            "detail": Jsonb({}),
        },
    )
    return job_id


async def restart_evaluation(conn: Conn, names: Sequence[str]) -> None:
    """Make the scheduler treat these entries as new (no catch-up from before now).

    Call it in the transaction that changes an entry's expression or time zone.
    """
    if names:
        await conn.execute(Q.restart_evaluation, {"names": list(names)})
