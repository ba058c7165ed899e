"""Evidence bundles: one per subject (cron entry, job, queue).

A bundle answers, for an operator arriving from the overview or an alert: what is going
on (diagnosis), what happened in order (chronology merging the audit trail, cron slots,
scheduler coverage gaps and job history), how sure that picture is (completeness), and
where to go next and who owns that venue (next paths). Every value passes the display
policy on the ``forensics`` surface; :meth:`EvidenceBundle.to_dict` is the export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, LiteralString
from urllib.parse import urlencode

from ..audit import queries as audit_queries
from ..cron.expression import (
    CronExpression,
    CronExpressionError,
    CronTimezoneError,
    due_minutes,
    load_timezone,
)
from ..db import Conn, Database
from ..display import Display
from ..read_models import cron as cron_model
from ..read_models import jobs as jobs_model
from ..read_models import queues as queues_model
from ..read_models.audit import AuditRow, audit_row
from ..read_models.common import (
    BRIDGE,
    HOST,
    NATIVE,
    PRODUCER_LIVE_SECONDS,
    NextPath,
    ago,
    duration,
    now_utc,
    utc,
)
from ..read_models.principal import ShownPrincipal
from ..seams import Resource
from .completeness import (
    Completeness,
    Gap,
    coverage_gaps,
    cron_completeness,
    job_completeness,
    queue_completeness,
)

SUBJECT_TYPES = ("cron_entry", "job", "queue")
DEFAULT_WINDOW = timedelta(hours=24)
AUDIT_LIMIT = 100
SLOT_LIMIT = 200
COVERAGE_LIMIT = 2000
UNSLOTTED_LIMIT = 30

WINDOW_SLOTS: LiteralString = """
SELECT s.id, s.slot_at, s.kind, s.outcome, s.job_id, s.claimed_at, s.claimed_by,
       j.id IS NOT NULL AS job_present, j.state::text AS job_state,
       j.errors->-1->>'error' AS last_error
FROM powertools_cron_slots s
LEFT JOIN oban_jobs j ON j.id = s.job_id
WHERE s.entry_name = %(name)s AND s.slot_at >= %(since)s
ORDER BY s.slot_at DESC, s.id DESC
LIMIT %(limit)s
"""

WINDOW_COVERAGE: LiteralString = """
SELECT first_minute, last_minute FROM powertools_scheduler_coverage
WHERE last_minute >= %(since)s AND first_minute <= %(until)s
ORDER BY first_minute
LIMIT %(limit)s
"""

JOB_SLOTS: LiteralString = """
SELECT entry_name, slot_at, kind, outcome, claimed_at, claimed_by
FROM powertools_cron_slots WHERE job_id = %(id)s ORDER BY claimed_at LIMIT 5
"""


class UnsupportedSubject(ValueError):
    """Forensics has no bundle for this kind of subject (yet)."""


@dataclass(frozen=True, slots=True)
class ChronologyItem:
    at: datetime | None
    source: str  # "audit", "cron slot", "scheduler", "job"
    title: str
    detail: str = ""
    actor: ShownPrincipal | None = None  # id beside label, already displayed
    href: str | None = None  # relative to the mount


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    resource_type: str
    resource_id: str
    subject: str  # display-policy label of the subject
    exists: bool
    state: str  # a one-word summary: paused, active, failing, retryable, running ...
    diagnosis: str
    details: list[str]
    facts: list[Fact]
    chronology: list[ChronologyItem]
    completeness: Completeness
    next_paths: list[NextPath]
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    audit: list[AuditRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The bundle as JSON-ready data (the export); values are already displayed."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "subject": {
                "resource_type": self.resource_type,
                "resource_id": self.subject,
                "exists": self.exists,
                "state": self.state,
            },
            "diagnosis": {"summary": self.diagnosis, "details": self.details},
            "facts": {f.label: f.value for f in self.facts},
            "completeness": {
                "label": self.completeness.label,
                "reasons": self.completeness.reasons,
            },
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "chronology": [
                {
                    "at": iso(item.at),
                    "source": item.source,
                    "title": item.title,
                    "detail": item.detail,
                    "actor": item.actor.to_dict() if item.actor else None,
                    "href": item.href,
                }
                for item in self.chronology
            ],
            "next_paths": [
                {"label": p.label, "ownership": p.ownership, "href": p.href, "note": p.note}
                for p in self.next_paths
            ],
            "generated_at": iso(self.generated_at),
        }


def _q(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


def _audit_path(resource_type: str, resource_id: str) -> NextPath:
    return NextPath(
        "Audit trail for this subject",
        NATIVE,
        _q("/audit", resource_type=resource_type, resource_id=resource_id),
    )


def _sorted(items: list[ChronologyItem]) -> list[ChronologyItem]:
    """Newest first; items without a time (unknown) go last."""
    dated = [i for i in items if i.at is not None]
    dated.sort(key=_at, reverse=True)
    return dated + [i for i in items if i.at is None]


def _at(item: ChronologyItem) -> datetime:
    assert item.at is not None
    return item.at


def _audit_items(rows: Sequence[AuditRow]) -> list[ChronologyItem]:
    items = []
    for row in rows:
        detail = f"Reason: '{row.reason}'." if row.reason else "No reason given."
        if row.outcome != "succeeded":
            detail = f"Outcome: {row.outcome}. " + detail
        items.append(
            ChronologyItem(
                at=utc(row.occurred_at),
                source="audit",
                title=f"{row.action} via {row.surface}",
                detail=detail,
                actor=row.actor,
                href=f"/audit/{row.id}",
            )
        )
    return items


async def _audit(
    conn: Conn, display: Display, resource_type: str, resource_id: str
) -> tuple[list[AuditRow], bool]:
    page = await audit_queries.events_for(conn, resource_type, resource_id, limit=AUDIT_LIMIT)
    rows = [audit_row(display, e, full=False) for e in page.events]
    return rows, page.next_before is not None


async def build_bundle(
    db: Database,
    display: Display,
    resource_type: str,
    resource_id: str,
    *,
    bridge: bool = False,
    now: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
) -> EvidenceBundle:
    """The evidence bundle for one subject. ``display`` should be on the forensics surface."""
    now = now or now_utc()
    if resource_type == "cron_entry":
        return await cron_bundle(db, display, resource_id, bridge=bridge, now=now, window=window)
    if resource_type == "job":
        return await job_bundle(db, display, resource_id, bridge=bridge, now=now, window=window)
    if resource_type == "queue":
        return await queue_bundle(db, display, resource_id, bridge=bridge, now=now, window=window)
    raise UnsupportedSubject(
        f"forensics covers {', '.join(SUBJECT_TYPES)}; {resource_type[:40]!r} is not one of them"
    )


# -- cron entries ---------------------------------------------------------------------


async def cron_bundle(
    db: Database,
    display: Display,
    name: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    resource = Resource("cron_entry", name)
    subject = display.text("cron_entry", name, resource=resource, field="name")
    async with db.connection() as conn:
        rows = await cron_model.fetch_entries(conn, name)
        audit_rows, audit_truncated = await _audit(conn, display, "cron_entry", name)
        row = rows[0] if rows else None
        start = now - window
        if row is not None and row["created_at"] is not None:
            start = max(start, utc(row["created_at"]) or start)
        cur = await conn.execute(WINDOW_SLOTS, {"name": name, "since": start, "limit": SLOT_LIMIT})
        slots = await cur.fetchall()
        cur = await conn.execute(
            WINDOW_COVERAGE, {"since": start, "until": now, "limit": COVERAGE_LIMIT}
        )
        spans = [(utc(r["first_minute"]), utc(r["last_minute"])) for r in await cur.fetchall()]
    clean_spans = [(a, b) for a, b in spans if a is not None and b is not None]
    gaps = coverage_gaps(start, now, clean_spans) if clean_spans else []

    if row is None:
        completeness = cron_completeness(
            exists=False,
            has_audit=bool(audit_rows),
            spans=0,
            gaps=[],
            referenced_jobs=0,
            missing_jobs=0,
        )
        diagnosis = f"No cron entry named {subject} exists." + (
            " Its audit trail is shown below." if audit_rows else ""
        )
        return EvidenceBundle(
            "cron_entry",
            name,
            subject,
            False,
            "missing",
            diagnosis,
            [],
            [],
            _sorted(_audit_items(audit_rows)),
            completeness,
            [_audit_path("cron_entry", name), NextPath("All cron entries", NATIVE, "/cron")],
            start,
            now,
            now,
            audit_rows,
        )

    entry = cron_model.entry_view(display, row, now)
    referenced = [s for s in slots if s["job_id"] is not None]
    missing = [s for s in referenced if not s["job_present"]]
    completeness = cron_completeness(
        exists=True,
        has_audit=bool(audit_rows),
        spans=len(clean_spans),
        gaps=gaps,
        referenced_jobs=len(referenced),
        missing_jobs=len(missing),
        truncated=audit_truncated or len(slots) >= SLOT_LIMIT or len(spans) >= COVERAGE_LIMIT,
    )

    items = _audit_items(audit_rows)
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
        paths.append(_audit_path("cron_entry", name))
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
                    _q("/forensics", resource_type="job", resource_id=str(last.job_id)),
                )
            )
            paths.append(
                NextPath(
                    "Fix the worker or its upstream dependency",
                    HOST,
                    note="Worker code and the systems it calls are host-owned.",
                )
            )
        paths.append(_audit_path("cron_entry", name))
    if bridge:
        paths.append(NextPath("Inspect cron in Oban Web", BRIDGE, "/oban/crons"))

    return EvidenceBundle(
        "cron_entry",
        name,
        subject,
        True,
        state,
        diagnosis,
        details,
        facts,
        _sorted(items),
        completeness,
        paths,
        start,
        now,
        now,
        audit_rows,
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


# -- jobs -------------------------------------------------------------------------------


async def job_bundle(
    db: Database,
    display: Display,
    raw_id: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    text = raw_id.strip()
    job_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    resource = Resource("job", raw_id)
    subject = display.text("job", raw_id, resource=resource, field="id")
    async with db.connection() as conn:
        row = None
        slots: list[Any] = []
        if job_id is not None:
            cur = await conn.execute(
                jobs_model.GET_JOB, {"id": job_id, "live": PRODUCER_LIVE_SECONDS}
            )
            row = await cur.fetchone()
            cur = await conn.execute(JOB_SLOTS, {"id": job_id})
            slots = list(await cur.fetchall())
        audit_rows, audit_truncated = await _audit(conn, display, "job", raw_id)
    items = _audit_items(audit_rows)
    if row is None:
        completeness = job_completeness(exists=False, has_audit=bool(audit_rows))
        diagnosis = f"Job {subject} is not in oban_jobs (pruned or never existed)." + (
            " Its audit trail is shown below." if audit_rows else ""
        )
        return EvidenceBundle(
            "job",
            raw_id,
            subject,
            False,
            "missing",
            diagnosis,
            [],
            [],
            _sorted(items),
            completeness,
            [_audit_path("job", raw_id), NextPath("All jobs", NATIVE, "/jobs")],
            now - window,
            now,
            now,
            audit_rows,
        )

    job = jobs_model.detail_from_row(display, row)
    meta = row["meta"] or {}
    rescued = meta.get("rescued") if isinstance(meta.get("rescued"), int) else 0
    completeness = job_completeness(
        exists=True,
        has_audit=bool(audit_rows),
        state=job.state,
        attempt=job.attempt,
        errors_recorded=len(job.errors),
        rescued=rescued or 0,
        truncated=audit_truncated,
    )
    node = job.nodes[0] if job.nodes else "an unknown node"
    items.append(ChronologyItem(job.inserted_at, "job", "inserted", f"queue {job.queue}"))
    if (
        job.scheduled_at
        and job.inserted_at
        and job.scheduled_at - job.inserted_at > timedelta(seconds=1)
    ):
        items.append(ChronologyItem(job.scheduled_at, "job", "scheduled to run"))
    for err in job.errors:
        items.append(
            ChronologyItem(err.at, "job", f"attempt {err.attempt or '?'} failed", err.line)
        )
    if job.attempted_at:
        items.append(
            ChronologyItem(job.attempted_at, "job", f"attempt {job.attempt} started", f"on {node}")
        )
    for label, at in (
        ("completed", job.completed_at),
        ("cancelled", job.cancelled_at),
        ("discarded", job.discarded_at),
    ):
        if at:
            items.append(ChronologyItem(at, "job", label))
    for s in slots:
        items.append(
            ChronologyItem(
                utc(s["claimed_at"]),
                "cron slot",
                f"enqueued by cron entry {display.text('cron_entry', s['entry_name'], field='name')}",
                f"{s['kind']} slot for {utc(s['slot_at']):%Y-%m-%d %H:%M} UTC",
                href=f"/cron/{s['entry_name']}",
            )
        )

    last_error = job.errors[-1].line if job.errors else ""
    details: list[str] = []
    paths: list[NextPath] = []
    state = job.state
    if job.state == "executing":
        running = duration((now - job.attempted_at).total_seconds()) if job.attempted_at else "?"
        if not job.producer_live:
            state = "orphaned"
            diagnosis = (
                f"Executing for {running} on {node}, which has no live producer: the node is "
                "gone or stuck and the job will not finish there."
            )
            paths.append(
                NextPath("Check the node's health", HOST, note="Nodes and deploys are host-owned.")
            )
        else:
            diagnosis = (
                f"Executing attempt {job.attempt} of {job.max_attempts} on {node} for {running}."
            )
    elif job.state == "retryable":
        diagnosis = (
            f"Attempt {job.attempt} of {job.max_attempts} failed"
            + (f" with '{last_error}'" if last_error else "")
            + f"; the next attempt is due {ago(job.scheduled_at, now)}."
        )
    elif job.state == "discarded":
        by_operator = bool(meta.get("discarded_by_operator"))
        diagnosis = (
            "Discarded by an operator; it will not run again."
            if by_operator
            else f"Discarded after {job.attempt} of {job.max_attempts} attempts"
            + (f"; last error '{last_error}'" if last_error else "")
            + ". It will not run again."
        )
    elif job.state == "cancelled":
        diagnosis = f"Cancelled {ago(job.cancelled_at, now)}; it will not run again."
    elif job.state == "completed":
        diagnosis = f"Completed {ago(job.completed_at, now)} on attempt {job.attempt}."
    elif job.state == "scheduled":
        diagnosis = f"Scheduled to run {ago(job.scheduled_at, now)}."
    elif job.state == "available":
        diagnosis = (
            f"Available since {ago(job.scheduled_at, now)}, waiting for a node running queue "
            f"{job.queue}."
        )
    else:
        diagnosis = f"In state {job.state}."
    if job.errors and job.state in ("retryable", "discarded", "executing"):
        paths.append(
            NextPath(
                "Fix the worker or its upstream dependency",
                HOST,
                note="Worker code and the systems it calls are host-owned.",
            )
        )
    if job.actions:
        labels = {"retry_job": "Retry", "cancel_job": "Cancel", "discard_job": "Discard"}
        verbs = " / ".join(labels[a] for a in job.actions)
        paths.insert(0, NextPath(f"{verbs} job", NATIVE, f"/jobs/{job.id}"))
    else:
        paths.insert(0, NextPath("Job details", NATIVE, f"/jobs/{job.id}"))
    paths.append(
        NextPath(
            "Queue " + job.queue,
            NATIVE,
            _q("/forensics", resource_type="queue", resource_id=row["queue"]),
        )
    )
    if job.cron_name:
        paths.append(NextPath("Cron entry " + job.cron_name, NATIVE, f"/cron/{meta['cron_name']}"))
    paths.append(_audit_path("job", str(job.id)))
    if bridge:
        paths.append(NextPath("Inspect job in Oban Web", BRIDGE, f"/oban/jobs/{job.id}"))
    if rescued:
        details.append(f"Rescued {rescued} time(s) after its node went away.")
    facts = [
        Fact("State", job.state),
        Fact("Worker", job.worker),
        Fact("Queue", job.queue),
        Fact("Attempts", f"{job.attempt} of {job.max_attempts}"),
        Fact("Last node", node),
    ]
    return EvidenceBundle(
        "job",
        raw_id,
        subject,
        True,
        state,
        diagnosis,
        details,
        facts,
        _sorted(items),
        completeness,
        paths,
        utc(row["inserted_at"]) or now - window,
        now,
        now,
        audit_rows,
    )


# -- queues -----------------------------------------------------------------------------


async def queue_bundle(
    db: Database,
    display: Display,
    name: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    resource = Resource("queue", name)
    subject = display.text("queue", name, resource=resource, field="queue")
    views = await queues_model.list_queues(db, display, queue=name)
    async with db.connection() as conn:
        audit_rows, audit_truncated = await _audit(conn, display, "queue", name)
    view = views[0] if views else None
    items = _audit_items(audit_rows)
    if view is None:
        completeness = queue_completeness(known=bool(audit_rows), live_nodes=0, stale_nodes=0)
        diagnosis = f"No node runs queue {subject} and no decision is stored for it."
        return EvidenceBundle(
            "queue",
            name,
            subject,
            bool(audit_rows),
            "missing",
            diagnosis,
            [],
            [],
            _sorted(items),
            completeness,
            [_audit_path("queue", name), NextPath("All queues", NATIVE, "/queues")],
            now - window,
            now,
            now,
            audit_rows,
        )
    live = view.live_nodes
    stale = sum(1 for n in view.nodes if n.freshness == "stale")
    completeness = queue_completeness(
        known=True, live_nodes=live, stale_nodes=stale, truncated=audit_truncated
    )
    for n in view.nodes:
        items.append(
            ChronologyItem(
                n.started_at,
                "node",
                f"{n.node} started running the queue",
                f"limit {n.limit}, last report {ago(n.updated_at, now)} ({n.freshness})",
            )
        )
    available = view.counts.get("available")
    executing = view.counts.get("executing")
    load = f"{available or 0} available, {executing or 0} executing"
    if view.paused:
        state = "paused"
        if view.decided_paused:
            diagnosis = (
                f"Paused by {view.decided_by or 'an unknown actor'} {ago(view.decided_at, now)}"
            )
            diagnosis += f": '{view.decision_reason}'." if view.decision_reason else "."
            diagnosis += f" No node fetches new jobs from it ({load})."
        else:
            diagnosis = f"Paused on every live node without a stored decision ({load})."
    else:
        state = "running" if live else "no nodes"
        diagnosis = (
            f"Running on {live} node(s) with limit {view.effective_limit or '?'} ({load})."
            if live
            else f"No live node runs this queue ({load})."
        )
    paths = [
        NextPath(("Resume" if view.paused else "Pause") + " or scale queue", NATIVE, "/queues"),
        NextPath("Jobs in this queue", NATIVE, _q("/jobs", queue=name)),
        _audit_path("queue", name),
        NextPath(
            "Capacity, deploys and node health",
            HOST,
            note="Which nodes run the queue and their resources are host-owned.",
        ),
    ]
    if bridge:
        paths.append(NextPath("Inspect queue in Oban Web", BRIDGE, "/oban/queues"))
    facts = [
        Fact("Stored decision", _decision_fact(view)),
        Fact("Nodes", f"{live} live of {len(view.nodes)} reporting"),
        Fact("Limit", str(view.effective_limit or "unknown")),
    ]
    return EvidenceBundle(
        "queue",
        name,
        subject,
        True,
        state,
        diagnosis,
        list(view.notes),
        facts,
        _sorted(items),
        completeness,
        paths,
        now - window,
        now,
        now,
        audit_rows,
    )


def _decision_fact(view: queues_model.QueueView) -> str:
    if view.decided_paused is None and view.limit_override is None:
        return "none (nodes run their configured state)"
    parts = ["paused" if view.decided_paused else "running"]
    if view.limit_override is not None:
        parts.append(f"limit {view.limit_override}")
    if view.decided_by:
        parts.append(f"by {view.decided_by}")
    return ", ".join(parts)
