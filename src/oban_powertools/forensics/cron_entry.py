"""The evidence bundle of a cron entry: its slots, the scheduler's coverage of the window,
the due minutes without a slot, and its audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..cron.expression import CronExpression
from ..cron.firing import due_minutes
from ..cron.timezones import load_timezone
from ..db import Database
from ..db.queries import Statements
from ..display import Display
from ..errors import CronExpressionError, CronTimezoneError
from ..read_models import cron as cron_model
from ..read_models.common import BRIDGE, FIX_THE_WORKER, HOST, NATIVE, NextPath, ago, utc
from .bundle import ChronologyItem, EvidenceBundle, Fact, open_subject, with_query
from .completeness import Gap, coverage_gaps, cron_completeness

SLOT_LIMIT = 200
COVERAGE_LIMIT = 2000
UNSLOTTED_LIMIT = 30

Q = Statements(
    cron_slots="entry_window_slots",
    scheduler_coverage="window_coverage",
)


async def cron_bundle(
    db: Database,
    display: Display,
    name: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    async with db.connection() as conn:
        rows = await cron_model.fetch_entries(conn, name)
        evidence = await open_subject(conn, display, "cron_entry", name, field="name", now=now)
        row = rows[0] if rows else None
        start = now - window
        if row is not None and row["created_at"] is not None:
            start = max(start, utc(row["created_at"]) or start)
        cur = await conn.execute(
            Q.entry_window_slots, {"name": name, "since": start, "limit": SLOT_LIMIT}
        )
        slots = await cur.fetchall()
        cur = await conn.execute(
            Q.window_coverage, {"since": start, "until": now, "limit": COVERAGE_LIMIT}
        )
        spans = [(utc(r["first_minute"]), utc(r["last_minute"])) for r in await cur.fetchall()]
    clean_spans = [(a, b) for a, b in spans if a is not None and b is not None]
    gaps = coverage_gaps(start, now, clean_spans) if clean_spans else []

    if row is None:
        completeness = cron_completeness(
            exists=False,
            has_audit=bool(evidence.audit),
            spans=0,
            gaps=[],
            referenced_jobs=0,
            missing_jobs=0,
        )
        return evidence.missing(
            diagnosis=f"No cron entry named {evidence.label} exists.",
            completeness=completeness,
            index=NextPath("All cron entries", NATIVE, "/cron"),
            window_start=start,
        )

    entry = cron_model.entry_view(display, row, now)
    referenced = [s for s in slots if s["job_id"] is not None]
    missing = [s for s in referenced if not s["job_present"]]
    completeness = cron_completeness(
        exists=True,
        has_audit=bool(evidence.audit),
        spans=len(clean_spans),
        gaps=gaps,
        referenced_jobs=len(referenced),
        missing_jobs=len(missing),
        truncated=evidence.audit_truncated
        or len(slots) >= SLOT_LIMIT
        or len(spans) >= COVERAGE_LIMIT,
    )

    items = evidence.audit_items()
    slot_minutes = set()
    for s in slots:
        slot_at = utc(s["slot_at"])
        slot_minutes.add(slot_at)
        job = f"job {s['job_id']}" if s["job_id"] else "no job"
        if s["job_id"] and not s["job_present"]:
            state = "pruned"
        else:
            state = s["job_state"] or "-"
        items.append(
            ChronologyItem(
                at=slot_at,
                source="cron slot",
                title=f"{s['kind']} slot {s['outcome'].replace('_', ' ')}",
                detail=f"{job} ({state})" if s["job_id"] else job,
                href=f"/jobs/{s['job_id']}" if s["job_id"] and s["job_present"] else None,
            )
        )
    for gap in gaps:
        items.append(
            ChronologyItem(
                at=gap.last,
                source="scheduler",
                title="coverage gap",
                detail=(
                    f"No leader evaluated the schedule from {gap.first:%Y-%m-%d %H:%M} to "
                    f"{gap.last:%H:%M} UTC ({gap.minutes} minute(s)); due slots in it may have "
                    "been missed."
                ),
            )
        )
    items.extend(_unslotted(entry, row, start, now, slot_minutes, clean_spans))

    details: list[str] = []
    if entry.paused:
        state = "paused"
        diagnosis = f"Paused by {entry.paused_by or 'an unknown actor'} {ago(entry.paused_at, now)}"
        diagnosis += f": '{entry.paused_reason}'." if entry.paused_reason else "."
        diagnosis += " The scheduler claims no slot until resumed."
        if entry.pause_expires_at:
            details.append(
                f"The pause ends by itself {ago(entry.pause_expires_at, now)} "
                f"({entry.pause_expires_at:%Y-%m-%d %H:%M} UTC); that resume is audited."
            )
        if entry.next_run:
            details.append(
                f"Without the pause the next run would be {entry.next_run:%Y-%m-%d %H:%M} UTC "
                f"({ago(entry.next_run, now)})."
            )
        details.append(
            f"On resume: {entry.catch_up_words} (catch-up policy '{entry.catch_up_policy}')."
        )
    else:
        state = "active"
        if entry.schedule_error:
            state = "invalid"
            diagnosis = f"The schedule cannot be evaluated: {entry.schedule_error}."
        elif entry.next_run:
            diagnosis = (
                f"Active: {entry.description} ({entry.timezone}); next run "
                f"{entry.next_run:%Y-%m-%d %H:%M} UTC ({ago(entry.next_run, now)})."
            )
        else:
            diagnosis = "Active, but the schedule has no future run."
    last = entry.last_run
    if last.at is not None:
        job_part = ""
        if last.job_id:
            job_part = f", job {last.job_id} " + (last.job_state or "pruned")
        details.append(f"Last run {ago(last.at, now)} ({last.kind}, {last.outcome}{job_part}).")
        if last.job_state in ("retryable", "discarded") and not entry.paused:
            state = "failing"
    else:
        details.append("No run recorded yet.")

    facts = [
        Fact("Schedule", f"{entry.expression} — {entry.description}"),
        Fact("Time zone", entry.timezone),
        Fact("Worker", entry.worker),
        Fact("Queue", entry.queue),
        Fact("Overlap policy", f"{entry.overlap_policy}: {entry.overlap_words}"),
        Fact("Catch-up policy", f"{entry.catch_up_policy}: {entry.catch_up_words}"),
        Fact("Scheduler coverage", _coverage_fact(clean_spans, gaps)),
    ]
    if entry.paused:
        facts.insert(0, Fact("Paused by", str(entry.paused_by or "unknown")))
        facts.insert(1, Fact("Pause reason", entry.paused_reason or "none recorded"))

    paths: list[NextPath] = []
    if entry.paused:
        paths.append(NextPath("Resume cron entry", NATIVE, f"/cron/{name}"))
        paths.append(evidence.audit_path())
        paths.append(
            NextPath(
                "Check the upstream system / runbook",
                HOST,
                note="Whether the cause of the pause is fixed is known outside Powertools.",
            )
        )
    else:
        paths.append(NextPath("Pause cron entry or run it now", NATIVE, f"/cron/{name}"))
        if last.job_id and last.job_state in ("retryable", "discarded"):
            paths.append(
                NextPath(
                    "Evidence for the last run's job",
                    NATIVE,
                    with_query("/forensics", resource_type="job", resource_id=str(last.job_id)),
                )
            )
            paths.append(FIX_THE_WORKER)
        paths.append(evidence.audit_path())
    if bridge:
        paths.append(NextPath("Inspect cron in Oban Web", BRIDGE, "/oban/crons"))

    return evidence.bundle(
        state=state,
        diagnosis=diagnosis,
        details=details,
        facts=facts,
        items=items,
        completeness=completeness,
        next_paths=paths,
        window_start=start,
    )


def _coverage_fact(spans: Sequence[tuple[datetime, datetime]], gaps: Sequence[Gap]) -> str:
    if not spans:
        return "no coverage recorded in this window"
    if not gaps:
        return "the whole window was evaluated"
    return f"{len(gaps)} gap(s), {sum(g.minutes for g in gaps)} minute(s) not evaluated"


def _unslotted(
    entry: cron_model.CronEntryView,
    row: Mapping[str, Any],
    start: datetime,
    now: datetime,
    slotted: set[datetime | None],
    spans: Sequence[tuple[datetime, datetime]],
) -> list[ChronologyItem]:
    """Due minutes of the window without a slot, and what the evidence says about each."""
    try:
        expr = CronExpression.parse(row["expression"])
        tz = load_timezone(row["timezone"])
    except (CronExpressionError, CronTimezoneError):
        return []
    due = due_minutes(expr, tz, start, now, limit=1500)
    missing = [m for m in due if m not in slotted]
    items = []
    for minute in missing[-UNSLOTTED_LIMIT:]:
        covered = any(first <= minute <= last for first, last in spans)
        if entry.paused and entry.paused_at is not None and minute >= entry.paused_at:
            title, detail = "due minute, no slot", "The entry was paused: no slot was claimed."
        elif covered:
            title, detail = "due minute, no slot", "Evaluated by the scheduler without a slot."
        elif spans:
            title, detail = "due minute, not evaluated", "Inside a coverage gap."
        else:
            title, detail = "due minute, no slot", "No scheduler coverage is recorded for it."
        items.append(ChronologyItem(at=minute, source="scheduler", title=title, detail=detail))
    if len(missing) > UNSLOTTED_LIMIT:
        items.append(
            ChronologyItem(
                at=missing[0],
                source="scheduler",
                title=f"{len(missing) - UNSLOTTED_LIMIT} earlier due minute(s) without a slot",
                detail="Not listed one by one.",
            )
        )
    return items
