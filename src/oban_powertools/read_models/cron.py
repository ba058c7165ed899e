"""Cron entries as pages show them: schedule in words, policies, next and last run, pauses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from ..cron.expression import CronExpression
from ..cron.firing import next_fire
from ..cron.timezones import load_timezone
from ..db import Conn, Database
from ..db.queries import Statements
from ..display import Display
from ..errors import CronExpressionError, CronTimezoneError
from ..runtime import presence
from ..seams import Resource
from .common import now_utc, utc
from .principal import ShownPrincipal, shown_stored

MAX_ENTRIES = 500
RECENT_SLOTS = 25

OVERLAP_WORDS = {
    "allow": "a new run starts even while the previous one is still running",
    "skip": "a slot is skipped while the previous run is still running",
    "queue_one": "one follow-up run waits for the running one to finish",
    "cancel_previous": "the running job is cancelled and replaced by the new run",
}

CATCH_UP_WORDS = {
    "none": "minutes missed while paused or down are skipped",
    "latest": "the latest missed minute runs once",
    "all": "every missed minute runs, up to the catch-up limit",
}

Q = Statements(
    cron_entries="list_entries",
    cron_slots="recent_slots",
)


@dataclass(frozen=True, slots=True)
class LastRun:
    at: datetime | None
    kind: str | None
    outcome: str | None
    job_id: int | None
    job_state: str | None  # None when the job was pruned (or never enqueued)


@dataclass(frozen=True, slots=True)
class CronEntryView:
    key: str  # the entry's name as stored: the target of links and actions
    name: str  # the name as the display policy shows it
    source: str
    worker: str
    queue: str
    args_json: str
    expression: str
    description: str
    timezone: str
    overlap_policy: str
    overlap_words: str
    catch_up_policy: str
    catch_up_words: str
    max_catch_up: int
    paused: bool
    paused_at: datetime | None
    paused_by: ShownPrincipal | None
    paused_reason: str | None
    pause_expires_at: datetime | None
    next_run: datetime | None
    schedule_error: str | None
    last_run: LastRun
    evaluated_through: datetime | None
    follow_up_slot_at: datetime | None
    version: int
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class SlotView:
    id: int
    slot_at: datetime | None
    kind: str
    outcome: str
    job_id: int | None
    job_state: str | None
    claimed_at: datetime | None
    claimed_by: str


@dataclass(frozen=True, slots=True)
class CronEntryDetail:
    entry: CronEntryView
    slots: list[SlotView]


@lru_cache(maxsize=4096)
def _parsed(expression: str, timezone: str) -> tuple[CronExpression, ZoneInfo, str] | str:
    """Parsed expression, zone and words, or the error. Entries share a few expressions, and
    parsing them again for every row of every page view was half of the cron page's time."""
    try:
        expr = CronExpression.parse(expression)
        tz = load_timezone(timezone)
    except (CronExpressionError, CronTimezoneError) as exc:
        return str(exc)
    return expr, tz, expr.describe()


def schedule(
    expression: str, timezone: str, now: datetime
) -> tuple[str, datetime | None, str | None]:
    """The expression in words and its next fire time, or why it cannot be evaluated."""
    parsed = _parsed(expression, timezone)
    if isinstance(parsed, str):
        return expression, None, parsed
    expr, tz, words = parsed
    return words, next_fire(expr, tz, now), None


def entry_view(display: Display, row: Mapping[str, Any], now: datetime) -> CronEntryView:
    resource = Resource("cron_entry", row["name"])
    description, next_run, error = schedule(row["expression"], row["timezone"], now)
    return CronEntryView(
        key=row["name"],
        name=display.text("cron_entry", row["name"], resource=resource, field="name"),
        source=row["source"],
        worker=display.text("worker", row["worker"], resource=resource, field="worker"),
        queue=display.text("queue", row["queue"], resource=resource, field="queue"),
        args_json=display.json("cron_args", row["args"], resource=resource)[0],
        expression=row["expression"],
        description=description,
        timezone=row["timezone"],
        overlap_policy=row["overlap_policy"],
        overlap_words=OVERLAP_WORDS.get(row["overlap_policy"], ""),
        catch_up_policy=row["catch_up_policy"],
        catch_up_words=CATCH_UP_WORDS.get(row["catch_up_policy"], ""),
        max_catch_up=row["max_catch_up"],
        paused=row["paused"],
        paused_at=utc(row["paused_at"]),
        paused_by=shown_stored(display, row, "paused_by", resource=resource),
        paused_reason=display.optional(
            "reason", row["paused_reason"], resource=resource, field="paused_reason"
        ),
        pause_expires_at=utc(row["pause_expires_at"]),
        next_run=next_run,
        schedule_error=error,
        last_run=LastRun(
            at=utc(row["last_run_at"] or row["last_slot_at"]),
            kind=row["last_run_kind"],
            outcome=row["last_run_outcome"],
            job_id=row["last_run_job_id"],
            job_state=row["last_job_state"],
        ),
        evaluated_through=utc(row["evaluated_through"]),
        follow_up_slot_at=utc(row["follow_up_slot_at"]),
        version=row["version"],
        updated_at=utc(row["updated_at"]),
    )


async def fetch_entries(conn: Conn, name: str | None = None) -> list[dict[str, Any]]:
    cur = await conn.execute(Q.list_entries, {"name": name, "limit": MAX_ENTRIES})
    return [dict(r) for r in await cur.fetchall()]


async def list_entries(
    db: Database, display: Display, *, now: datetime | None = None
) -> list[CronEntryView]:
    now = now or now_utc()
    async with db.connection() as conn:
        rows = await fetch_entries(conn)
    return [entry_view(display, r, now) for r in rows]


async def runtime_running(db: Database) -> bool:
    """Whether a running oban node runs the Powertools runtime: without one nothing
    schedules these entries, and entries declared in code are not stored at all, so an
    empty list would mislead."""
    async with db.connection() as conn:
        return (await presence.runtime_status(conn)).runtime_running


async def entry_detail(
    db: Database, display: Display, name: str, *, now: datetime | None = None
) -> CronEntryDetail | None:
    now = now or now_utc()
    async with db.connection() as conn:
        rows = await fetch_entries(conn, name)
        if not rows:
            return None
        cur = await conn.execute(Q.recent_slots, {"name": name, "limit": RECENT_SLOTS})
        slot_rows = await cur.fetchall()
    resource = Resource("cron_entry", name)
    slots = [
        SlotView(
            id=s["id"],
            slot_at=utc(s["slot_at"]),
            kind=s["kind"],
            outcome=s["outcome"],
            job_id=s["job_id"],
            job_state=s["job_state"],
            claimed_at=utc(s["claimed_at"]),
            claimed_by=display.text("node", s["claimed_by"], resource=resource, field="claimed_by"),
        )
        for s in slot_rows
    ]
    return CronEntryDetail(entry_view(display, rows[0], now), slots)
