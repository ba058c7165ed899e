"""Cron entries in the database: declaring, reading, pausing and resuming them.

Pause and resume bump ``version``, the value drift detection compares, so a preview made
before someone else changed the entry cannot be confirmed against the new state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..db import Conn
from ..seams import Principal
from .expression import CronExpression, load_timezone

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
OVERLAP_POLICIES = ("allow", "skip", "queue_one", "cancel_previous")
CATCH_UP_POLICIES = ("none", "latest", "all")

# What an action snapshots of an entry (and compares, shows and audits).
ENTRY_COLUMNS: LiteralString = """
name, source, worker, queue, expression, timezone, overlap_policy, catch_up_policy,
max_catch_up, paused, paused_at, paused_by_id, paused_by_label, paused_reason,
pause_expires_at, last_slot_at, last_job_id, version
"""
SNAPSHOT_NAMES = tuple(column.strip() for column in ENTRY_COLUMNS.split(","))
# The same columns of the updated row, for RETURNING beside the locked old one.
NEW_COLUMNS: LiteralString = ", ".join(f"e.{column} AS {column}" for column in SNAPSHOT_NAMES)

# Composed of module constants only (LiteralString keeps it so); S608 cannot tell.
ENTRY_SNAPSHOT: LiteralString = (
    "SELECT " + ENTRY_COLUMNS + " FROM powertools_cron_entries WHERE name = ANY(%(names)s)"  # noqa: S608
)

ENTRY_SNAPSHOT_FOR_UPDATE: LiteralString = ENTRY_SNAPSHOT + " FOR UPDATE"

# Pause and resume lock the row, keep its before-state and change it in one statement (one
# round trip of a confirm), and only while the entry is still at the version the preview
# saw when one is given. It returns the before-state (``old.*``), then the after-state.
CHANGE_HEAD: LiteralString = (
    "WITH old AS (SELECT "  # noqa: S608 (module constants only)
    + ENTRY_COLUMNS
    + " FROM powertools_cron_entries WHERE name = %(name)s FOR UPDATE)"
    + " UPDATE powertools_cron_entries e"
)
CHANGE_TAIL: LiteralString = """
FROM old
WHERE e.name = old.name AND (%(version)s::bigint IS NULL OR old.version = %(version)s::bigint)
"""

PAUSE_SET: LiteralString = """
SET paused = true, paused_at = clock_timestamp(), paused_by_id = %(by_id)s,
    paused_by_label = %(by_label)s, paused_reason = %(reason)s,
    pause_expires_at = %(expires_at)s, version = e.version + 1, updated_at = clock_timestamp()
"""
PAUSE_WHERE: LiteralString = " AND NOT old.paused"

RESUME_SET: LiteralString = """
SET paused = false, paused_at = NULL, paused_by_id = NULL, paused_by_label = NULL,
    paused_reason = NULL, pause_expires_at = NULL, version = e.version + 1,
    updated_at = clock_timestamp()
"""
RESUME_WHERE: LiteralString = " AND old.paused"

PAUSE_ENTRY: LiteralString = (
    CHANGE_HEAD + PAUSE_SET + CHANGE_TAIL + PAUSE_WHERE + " RETURNING old.*, " + NEW_COLUMNS
)
RESUME_ENTRY: LiteralString = (
    CHANGE_HEAD + RESUME_SET + CHANGE_TAIL + RESUME_WHERE + " RETURNING old.*, " + NEW_COLUMNS
)

# The same changes as the action's part of the pipeline's one-statement confirm: the row is
# locked and changed only when the pipeline's ``guard`` CTE (the locked, ready preview)
# has a row, at the previewed version; ``applied`` holds the before- and after-state.
_CONFIRM_OLD_HEAD: LiteralString = "old AS (SELECT "
_CONFIRM_OLD_TAIL: LiteralString = """
FROM powertools_cron_entries WHERE name = %(name)s AND EXISTS (SELECT FROM guard) FOR UPDATE),
changed AS (UPDATE powertools_cron_entries e"""
_RETURNING: LiteralString = " RETURNING "
_CONFIRM_APPLIED_TAIL: LiteralString = """),
applied AS (SELECT to_jsonb(old) AS before, to_jsonb(changed) AS after FROM old, changed)"""
CONFIRM_OLD: LiteralString = _CONFIRM_OLD_HEAD + ENTRY_COLUMNS + _CONFIRM_OLD_TAIL
CONFIRM_APPLIED: LiteralString = _RETURNING + NEW_COLUMNS + _CONFIRM_APPLIED_TAIL
PAUSE_CONFIRM: LiteralString = CONFIRM_OLD + PAUSE_SET + CHANGE_TAIL + PAUSE_WHERE + CONFIRM_APPLIED
RESUME_CONFIRM: LiteralString = (
    CONFIRM_OLD + RESUME_SET + CHANGE_TAIL + RESUME_WHERE + CONFIRM_APPLIED
)

# A pause's preview in one statement (its effect does not depend on the entry, so Python
# need not see the snapshot first): the entry is read, and the preview stored only when it
# is not paused. The before-state is the row as JSON; the plan hash the SHA-256 of the
# action, parameters and target (JSON, from Python), "|" and the entry's version.
_PAUSE_PREVIEW_HEAD: LiteralString = "WITH snap AS (SELECT "
_PAUSE_PREVIEW_BODY: LiteralString = """
FROM powertools_cron_entries WHERE name = %(name)s),
stored AS (
    INSERT INTO powertools_previews (
        token, action, resource_type, resource_id, targets, params, before, effect,
        plan_hash, actor_id, actor_type, actor_label, surface, expires_at
    )
    SELECT %(token)s, %(action)s, 'cron_entry', %(name)s, %(targets)s, %(params)s,
           jsonb_build_object(snap.name, to_jsonb(snap)), %(effect)s,
           encode(sha256(convert_to(%(plan)s || snap.version, 'UTF8')), 'hex'),
           %(actor_id)s, %(actor_type)s, %(actor_label)s, %(surface)s,
           clock_timestamp() + %(ttl)s
    FROM snap WHERE NOT snap.paused
    RETURNING before, """
_PAUSE_PREVIEW_TAIL: LiteralString = """
)
SELECT (SELECT count(*) FROM snap) AS found, stored.*
FROM (SELECT) AS one LEFT JOIN stored ON true
"""


def pause_preview_sql(preview_columns: LiteralString) -> LiteralString:
    """PAUSE_PREVIEW's statement, returning the preview's ``preview_columns``."""
    return (
        _PAUSE_PREVIEW_HEAD
        + ENTRY_COLUMNS
        + _PAUSE_PREVIEW_BODY
        + preview_columns
        + _PAUSE_PREVIEW_TAIL
    )


UPSERT_ENTRY: LiteralString = """
INSERT INTO powertools_cron_entries (
    name, source, worker, queue, args, job_options, expression, timezone, overlap_policy,
    catch_up_policy, max_catch_up, metadata
) VALUES (
    %(name)s, %(source)s, %(worker)s, %(queue)s, %(args)s, %(job_options)s, %(expression)s,
    %(timezone)s, %(overlap_policy)s, %(catch_up_policy)s, %(max_catch_up)s, %(metadata)s
)
ON CONFLICT (name) DO UPDATE SET
    source = EXCLUDED.source, worker = EXCLUDED.worker, queue = EXCLUDED.queue,
    args = EXCLUDED.args, job_options = EXCLUDED.job_options,
    expression = EXCLUDED.expression, timezone = EXCLUDED.timezone,
    overlap_policy = EXCLUDED.overlap_policy, catch_up_policy = EXCLUDED.catch_up_policy,
    max_catch_up = EXCLUDED.max_catch_up, metadata = EXCLUDED.metadata,
    version = powertools_cron_entries.version + 1, updated_at = clock_timestamp()
WHERE (powertools_cron_entries.source, powertools_cron_entries.worker,
       powertools_cron_entries.queue, powertools_cron_entries.args,
       powertools_cron_entries.job_options, powertools_cron_entries.expression,
       powertools_cron_entries.timezone, powertools_cron_entries.overlap_policy,
       powertools_cron_entries.catch_up_policy, powertools_cron_entries.max_catch_up,
       powertools_cron_entries.metadata)
      IS DISTINCT FROM
      (EXCLUDED.source, EXCLUDED.worker, EXCLUDED.queue, EXCLUDED.args,
       EXCLUDED.job_options, EXCLUDED.expression, EXCLUDED.timezone,
       EXCLUDED.overlap_policy, EXCLUDED.catch_up_policy, EXCLUDED.max_catch_up,
       EXCLUDED.metadata)
"""


class CronEntryError(ValueError):
    """A cron entry definition is invalid; nothing was written."""


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
        UPSERT_ENTRY,
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
        ENTRY_SNAPSHOT_FOR_UPDATE if lock else ENTRY_SNAPSHOT, {"names": list(names)}
    )
    return {row["name"]: _jsonable(row) for row in await cur.fetchall()}


@dataclass(frozen=True, slots=True)
class Changed:
    """An entry's snapshot before and after a pause or resume."""

    before: dict[str, Any]
    after: dict[str, Any]


async def change(conn: Conn, query: LiteralString, params: dict[str, Any]) -> Changed | None:
    """Run PAUSE_ENTRY or RESUME_ENTRY (``version`` None: at any version). None if the
    entry is missing, not in the state the change needs, or at another version."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(query, params)
    row = await cur.fetchone()
    if row is None:
        return None
    # Positional (reading cursor.description cost a tenth of a millisecond per confirm).
    width = len(SNAPSHOT_NAMES)
    before = dict(zip(SNAPSHOT_NAMES, row[:width], strict=True))
    after = dict(zip(SNAPSHOT_NAMES, row[width:], strict=True))
    return Changed(_jsonable(before), _jsonable(after))


async def pause_entry(
    conn: Conn, name: str, by: Principal, reason: str | None, expires_at: datetime | None
) -> Changed | None:
    """Pause; None if the entry is missing or already paused."""
    params = {
        "name": name,
        "by_id": by.id,
        "by_label": by.label,
        "reason": reason,
        "expires_at": expires_at,
        "version": None,
    }
    return await change(conn, PAUSE_ENTRY, params)


async def resume_entry(conn: Conn, name: str) -> Changed | None:
    """Resume; None if the entry is missing or not paused."""
    return await change(conn, RESUME_ENTRY, {"name": name, "version": None})


ENTRY_JOB_TEMPLATE: LiteralString = """
SELECT worker, queue, args, job_options, expression FROM powertools_cron_entries
WHERE name = %(name)s
"""

INSERT_SLOT: LiteralString = """
INSERT INTO powertools_cron_slots (entry_name, slot_at, kind, outcome, job_id, claimed_by, detail)
VALUES (%(name)s, %(slot_at)s, %(kind)s, %(outcome)s, %(job_id)s, %(claimed_by)s, %(detail)s)
ON CONFLICT (entry_name, slot_at) WHERE kind <> 'manual' DO NOTHING
RETURNING id
"""

RECORD_LAST_JOB: LiteralString = """
UPDATE powertools_cron_entries SET last_job_id = %(job_id)s WHERE name = %(name)s
"""


def job_meta(name: str, expression: str, slot_at: datetime, kind: str) -> dict[str, Any]:
    """The meta every cron job carries: oban's keys plus the entry name and slot kind."""
    return {
        "cron": True,
        "cron_at": slot_at.isoformat(),
        "cron_expr": expression,
        "cron_name": name,
        "cron_slot_kind": kind,
    }


def job_fields(
    template: Mapping[str, Any], name: str, slot_at: datetime, kind: str
) -> dict[str, Any]:
    """The columns of the entry's job for one slot, from its row (``worker``, ``queue``,
    ``args``, ``job_options``, ``expression``): the one place both the slot-by-slot and
    the scheduler's set-based insert take them from, so their jobs are identical."""
    options = template["job_options"]
    return {
        "worker": template["worker"],
        "queue": template["queue"],
        "args": template["args"],
        "meta": job_meta(name, template["expression"], slot_at, kind),
        "priority": int(options.get("priority", 0)),
        "max_attempts": int(options.get("max_attempts", 20)),
        "tags": sorted({t.lower() for t in options.get("tags", [])}),
    }


async def enqueue_for_entry(
    conn: Conn, prefix: str, name: str, slot_at: datetime, kind: str
) -> int:
    """Insert the entry's job for one slot (the slot row is the caller's business)."""
    from ..db import oban_jobs

    cur = await conn.execute(ENTRY_JOB_TEMPLATE, {"name": name})
    row = await cur.fetchone()
    if row is None:
        raise CronEntryError(f"no cron entry {name!r}")
    job_id = await oban_jobs.insert_job(conn, prefix, **job_fields(row, name, slot_at, kind))
    await conn.execute(RECORD_LAST_JOB, {"name": name, "job_id": job_id})
    return job_id


async def run_now(conn: Conn, prefix: str, name: str, claimed_by: str) -> int:
    """An operator's run outside the schedule: a job and a 'manual' slot row."""
    cur = await conn.execute("SELECT clock_timestamp() AS now")
    now_row = await cur.fetchone()
    assert now_row is not None
    now: datetime = now_row["now"]
    job_id = await enqueue_for_entry(conn, prefix, name, now, "manual")
    await conn.execute(
        INSERT_SLOT,
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


# A changed expression or time zone makes the entry's old evaluated_through meaningless:
# minutes the scheduler skipped as "not due" under the old definition could look like
# missed slots under the new one and be caught up. Starting over from now avoids that.
RESTART_EVALUATION: LiteralString = """
UPDATE powertools_cron_entries SET evaluated_through = NULL
WHERE name = ANY(%(names)s) AND evaluated_through IS NOT NULL
"""


async def restart_evaluation(conn: Conn, names: Sequence[str]) -> None:
    """Make the scheduler treat these entries as new (no catch-up from before now).

    Call it in the transaction that changes an entry's expression or time zone.
    """
    if names:
        await conn.execute(RESTART_EVALUATION, {"names": list(names)})
