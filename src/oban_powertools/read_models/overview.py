"""The diagnosis-first overview: what needs attention, why, and where to go next.

Each attention item names its next paths with their owner: a native page here, the Oban
Web bridge (only when configured), or a step the host owns. Items that share a cause are
one item (workers failing with the same error, jobs stuck on one node), and the page leads
with the numbers of ``glance`` (jobs by state and queue) and the charts of ``rollups``
(the last hour per minute or the last day per hour, from the job rollup).
Everything is bounded: lists are capped and counts stop at a cap or come from oban's
planner estimate, and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from ..config import DEFAULT_STUCK_AFTER_SECONDS
from ..db import Database
from ..db.queries import Statements
from ..display import Display
from ..runtime import presence
from ..seams import Resource
from . import audit as audit_model
from . import glance, job_failures, rollups
from . import limits as limits_model
from .common import (
    BRIDGE,
    FIX_THE_WORKER,
    HOST,
    NATIVE,
    Count,
    NextPath,
    ago,
    duration,
    now_utc,
    state_counts,
    utc,
)
from .failures import FailureGroup, group_failures
from .principal import shown_stored

type Severity = Literal["critical", "warning", "info"]

# Workers the failure check looks at; past it the overview says "at least".
FAILING_WORKERS_LIMIT = 25
# Workers listed in one grouped item; past it the item points to the jobs list for the rest.
LISTED_WORKERS = 10

Q = Statements(
    cron_entries="paused_entries",
    queue_states="paused_queues",
)


@dataclass(frozen=True, slots=True)
class Attention:
    kind: str
    severity: Severity
    title: str
    why: str
    since: datetime | None
    next: list[NextPath] = field(default_factory=list)
    # The one resource the item is about (None for aggregates such as a failing worker):
    # the page shows the item only to viewers who may view that resource.
    subject: Resource | None = None
    # Failures that share a cause: the workers affected, most recent first.
    affected: list[job_failures.FailingWorker] = field(default_factory=list)
    # More workers than listed: past LISTED_WORKERS, or the scan stopped at its limit.
    more_affected: bool = False


@dataclass(frozen=True, slots=True)
class Overview:
    attention: list[Attention]
    counts: dict[str, Count]
    by_queue: glance.ByQueue
    activity: rollups.Activity  # the charts: the last hour or day, from the job rollup
    failing: list[job_failures.FailingWorker]
    failure_groups: list[FailureGroup]
    stuck: list[job_failures.StuckJob]
    discarded: list[job_failures.DiscardedJob]
    recent_actions: list[audit_model.AuditRow]
    include_audit: bool
    checked: list[str]
    generated_at: datetime
    stuck_after: int


def _query(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


async def overview(
    db: Database,
    display: Display,
    *,
    bridge: bool = False,
    stuck_after: int = DEFAULT_STUCK_AFTER_SECONDS,
    include_audit: bool = True,
    window: rollups.Window = "hour",
    now: datetime | None = None,
) -> Overview:
    now = now or now_utc()
    async with db.connection() as conn:
        cur = await conn.execute(Q.paused_entries, {"limit": 50})
        paused_entries = await cur.fetchall()
        cur = await conn.execute(Q.paused_queues, {"limit": 50})
        paused_queues = await cur.fetchall()
        failing = await job_failures.failing_workers(conn, display, limit=FAILING_WORKERS_LIMIT)
        stuck = await job_failures.stuck_jobs(conn, display, stuck_after=stuck_after)
        discarded = await job_failures.recent_discarded(conn, display)
        counts = await state_counts(conn)
        by_queue = await glance.by_queue(conn, display)
        activity = await rollups.activity(conn, window, now=now)
        runtime = await presence.runtime_status(conn)
        limiters = await limits_model.limiters_in(conn, display)
    # Audit rows name actors and reasons: only for viewers who may read the audit log.
    recent = await audit_model.recent_events(db, display, limit=8) if include_audit else []

    items: list[Attention] = []
    if runtime.without_runtime:
        items.append(_runtime_missing(display, runtime.without_runtime))
    elif not runtime.runtime_running:
        items.append(_runtime_absent(display, runtime))
    for e in paused_entries:
        items.append(_paused_entry(display, e, now, bridge))
    for q in paused_queues:
        items.append(_paused_queue(display, q, now, bridge))
    for limiter in limiters.values():
        if limiter.saturated:
            items.append(_saturated_limit(display, limiter))
    for jobs in _by_node(stuck):
        if len(jobs) == 1:
            items.append(_stuck(jobs[0], now, stuck_after))
        else:
            items.append(_stuck_on_node(jobs, stuck_after))
    groups = group_failures(failing)
    for group in groups:
        items.append(_failure_group(group, len(failing) >= FAILING_WORKERS_LIMIT, now, bridge))
    if discarded and not counts["discarded"].zero:
        items.append(_discarded(counts["discarded"], discarded[0], now, bridge))
    order = {"critical": 0, "warning": 1, "info": 2}
    items.sort(key=lambda a: order[a.severity])
    return Overview(
        attention=items,
        counts=counts,
        by_queue=by_queue,
        activity=activity,
        failing=failing,
        failure_groups=groups,
        stuck=stuck,
        discarded=discarded,
        recent_actions=recent,
        include_audit=include_audit,
        checked=[
            "paused cron entries",
            "paused queues",
            "queue limiters holding jobs back (a global limit full, a rate spent)",
            f"jobs executing longer than {duration(stuck_after)} or on a node without a live "
            "producer",
            "failing workers (retryable now, discarded in the last 24 hours), grouped by "
            "their latest error",
            "discarded jobs",
            "a running node with the Powertools runtime, and running nodes without it "
            "(stopped nodes are not counted)",
        ],
        generated_at=now,
        stuck_after=stuck_after,
    )


RUNTIME_FIX = (
    "Pass **powertools.oban_options() to Oban(...) in every worker (or name the runtime in "
    "oban.toml for `oban start`), then restart the workers"
)


def _runtime_absent(display: Display, status: presence.RuntimeStatus) -> Attention:
    """No running node runs the runtime: nothing schedules the stored cron entries."""
    running = [display.text("node", n.node, field="node") for n in status.running]
    why = (
        "Nothing schedules the cron entries stored in Powertools, entries declared in code "
        "are not stored (the Cron page lists none), and stored queue decisions are not "
        "re-applied after a restart."
    )
    if running:
        why += f" Running without it: {', '.join(running[:10])}."
    else:
        why += " No oban node is running against this database."
    paths = [
        NextPath(
            RUNTIME_FIX,
            HOST,
            note="How the workers are started is host-owned; oban-powertools doctor checks it.",
        ),
        NextPath("Queue decisions and nodes", NATIVE, "/queues"),
    ]
    title = "No node runs the Powertools runtime"
    return Attention("runtime_absent", "critical", title, why, None, paths)


def _runtime_missing(display: Display, nodes: list[presence.NodeWithoutRuntime]) -> Attention:
    leader = next((n for n in nodes if n.leads), None)
    shown = [display.text("node", n.node, field="node") for n in nodes]
    names = [display.text("oban_instance", n.name, field="name") for n in nodes]
    if leader is not None:
        title = f"Node {shown[0]} leads '{names[0]}' without the Powertools runtime"
        why = (
            "As oban's leader it runs oban's own cron scheduler: the entries stored in "
            "Powertools are not scheduled and a paused entry declared in code still fires."
        )
        severity: Severity = "critical"
    else:
        title = (
            f"Node {shown[0]} runs queues without the Powertools runtime"
            if len(nodes) == 1
            else f"{len(nodes)} nodes run queues without the Powertools runtime"
        )
        why = (
            "Should one become oban's leader, it runs oban's own cron scheduler (no pauses, "
            "no database entries), and after a restart it does not re-apply the stored "
            "queue decisions (a paused queue fetches again)."
        )
        severity = "warning"
    others = [f"{node} ('{name}')" for node, name in zip(shown, names, strict=True)]
    why += f" Nodes: {', '.join(others)}."
    paths = [
        NextPath(
            "Pass **powertools.oban_options() to Oban(...) on every node, then restart them",
            HOST,
            note="How the workers are started is host-owned; oban-powertools doctor checks it.",
        ),
        NextPath("Queue decisions and nodes", NATIVE, "/queues"),
    ]
    return Attention("runtime_missing", severity, title, why, None, paths)


def _paused_entry(display: Display, e: Mapping[str, Any], now: datetime, bridge: bool) -> Attention:
    name = e["name"]
    resource = Resource("cron_entry", name)
    shown = display.text("cron_entry", name, resource=resource, field="name")
    by = shown_stored(display, e, "paused_by", resource=resource)
    reason = display.optional(
        "reason", e["paused_reason"], resource=resource, field="paused_reason"
    )
    paused_at = utc(e["paused_at"])
    why = f"Paused by {by or 'an unknown actor'} {ago(paused_at, now)}"
    why += f": '{reason}'." if reason else " (no reason recorded)."
    why += " The scheduler claims no slot until resumed."
    expires = utc(e["pause_expires_at"])
    if expires:
        why += f" The pause ends by itself {ago(expires, now)}."
    paths = [
        NextPath("Resume cron entry", NATIVE, f"/cron/{name}"),
        NextPath(
            "Evidence for this entry",
            NATIVE,
            _query("/forensics", resource_type="cron_entry", resource_id=name),
        ),
        NextPath(
            "Check the upstream system or runbook before resuming",
            HOST,
            note="The reason for the pause lives outside Powertools.",
        ),
    ]
    if bridge:
        paths.append(NextPath("Inspect cron in Oban Web", BRIDGE, "/oban/crons"))
    return Attention(
        "cron_paused", "warning", f"Cron entry {shown} is paused", why, paused_at, paths, resource
    )


def _paused_queue(display: Display, q: Mapping[str, Any], now: datetime, bridge: bool) -> Attention:
    name = q["queue"]
    resource = Resource("queue", name)
    shown = display.text("queue", name, resource=resource, field="queue")
    if q["undecided"]:
        why = (
            "Paused on at least one node without a stored decision (paused in code or outside "
            "Powertools); a restart may resume it."
        )
        since = None
    else:
        by = shown_stored(display, q, "changed_by", resource=resource)
        reason = display.optional("reason", q["reason"], resource=resource, field="reason")
        since = utc(q["updated_at"])
        why = f"Paused by {by or 'an unknown actor'} {ago(since, now)}"
        why += f": '{reason}'." if reason else "."
        why += " No node fetches new jobs from it, including nodes that restart."
    paths = [
        NextPath("Resume queue", NATIVE, "/queues"),
        NextPath(
            "Evidence for this queue",
            NATIVE,
            _query("/forensics", resource_type="queue", resource_id=name),
        ),
    ]
    if bridge:
        paths.append(NextPath("Inspect queue in Oban Web", BRIDGE, "/oban/queues"))
    title = f"Queue {shown} is paused"
    return Attention("queue_paused", "warning", title, why, since, paths, resource)


def _saturated_limit(display: Display, limiter: limits_model.LimiterView) -> Attention:
    """A limiter that binds now: the queue's jobs (or some partitions') wait for it."""
    resource = Resource("queue", limiter.queue)
    shown = display.text("queue", limiter.queue, resource=resource, field="queue")
    why = (
        "; ".join(limiter.held_back).capitalize()
        + f". No new jobs of these start until the limit frees up; the numbers are {limiter.source}."
    )
    paths = [
        NextPath("Limiters' use and Change limits on the Queues page", NATIVE, "/queues"),
        NextPath(
            "Evidence for this queue",
            NATIVE,
            _query("/forensics", resource_type="queue", resource_id=limiter.queue),
        ),
        NextPath(
            "Check the capacity the limit protects before raising it",
            HOST,
            note="The limit guards a resource of the host (an API quota, a database).",
        ),
    ]
    title = f"Queue {shown} is held back by its limits"
    return Attention("limit_saturated", "info", title, why, None, paths, resource)


def _stuck(job: job_failures.StuckJob, now: datetime, stuck_after: int) -> Attention:
    running = duration(job.running_seconds or 0)
    if job.orphaned:
        why = (
            f"Executing for {running} on {job.node}, which has no live producer: the node is "
            "gone or stuck, and the job will not finish there."
        )
        severity: Severity = "critical"
    else:
        why = f"Executing for {running} on {job.node} (longer than {duration(stuck_after)})."
        severity = "warning"
    return Attention(
        "stuck_job",
        severity,
        f"Job {job.id} ({job.worker}) looks stuck",
        why,
        job.attempted_at,
        [
            NextPath(
                "Evidence for this job",
                NATIVE,
                _query("/forensics", resource_type="job", resource_id=str(job.id)),
            ),
            NextPath("Cancel or retry the job", NATIVE, f"/jobs/{job.id}"),
            NextPath(
                "Check the node's health in the host's infrastructure",
                HOST,
                note="Node restarts and capacity are host-owned.",
            ),
        ],
        Resource("job", str(job.id)),
    )


def _by_node(stuck: list[job_failures.StuckJob]) -> list[list[job_failures.StuckJob]]:
    """Stuck jobs per node and kind (orphaned or slow): a dead node is one item, not fifty."""
    groups: dict[tuple[str, bool], list[job_failures.StuckJob]] = {}
    for job in stuck:
        groups.setdefault((job.node, job.orphaned), []).append(job)
    return list(groups.values())


def _stuck_on_node(jobs: list[job_failures.StuckJob], stuck_after: int) -> Attention:
    """Several stuck jobs on one node: one item; the jobs are listed in the table below it."""
    first = jobs[0]  # the scan reads the longest-running first
    running = duration(first.running_seconds or 0)
    n = len(jobs)
    if first.orphaned:
        title = f"{n} jobs are orphaned on {first.node}"
        why = (
            f"Executing on {first.node}, which has no live producer: the node is gone or "
            f"stuck, and these jobs will not finish there. The longest has run for {running}."
        )
        severity: Severity = "critical"
    else:
        title = f"{n} jobs run longer than {duration(stuck_after)} on {first.node}"
        why = f"Executing on {first.node} for up to {running}; the node is live."
        severity = "warning"
    why += " Each is listed under Stuck or orphaned jobs."
    paths = [
        NextPath("Cancel or retry each job from its page", NATIVE, "/jobs?state=executing"),
        NextPath(
            "Check the node's health in the host's infrastructure",
            HOST,
            note="Node restarts and capacity are host-owned.",
        ),
    ]
    return Attention("stuck_jobs", severity, title, why, first.attempted_at, paths)


def _failure_group(group: FailureGroup, truncated: bool, now: datetime, bridge: bool) -> Attention:
    """One item per cause: the workers it affects, counted, and the next paths once."""
    bound = "at least " if group.sampled else ""
    parts = []
    if group.retryable:
        parts.append(f"{bound}{group.retryable} retryable")
    if group.discarded:
        parts.append(f"{bound}{group.discarded} discarded in the last 24 hours")
    when = ago(group.last_failed_at, now) if group.last_failed_at else "at an unknown time"
    single = len(group.workers) == 1
    latest = group.latest
    if single:
        title = f"Worker {latest.worker} is failing"
        why = f"{' and '.join(parts).capitalize()}; last failure {when}"
        why += f": {latest.last_error}" if latest.last_error else "."
    else:
        n = f"{len(group.workers)}{'+' if truncated else ''}"
        named = f"with {group.error_class}" if group.error_class else "with the same error"
        title = f"{n} workers are failing {named}"
        why = (
            f"{' and '.join(parts).capitalize()} across {n} workers whose latest error is the "
            f"same; last failure {when}: {group.cause}"
        )
    state = "retryable" if group.retryable else "discarded"
    paths = [
        NextPath(
            "Failing jobs of this worker" if single else "Failing jobs (per worker: listed above)",
            NATIVE,
            _query("/jobs", worker=latest.worker, state=state)
            if single
            else _query("/jobs", state=state),
        ),
        NextPath(
            "Evidence for the latest failure",
            NATIVE,
            _query("/forensics", resource_type="job", resource_id=str(latest.last_job_id)),
        ),
        FIX_THE_WORKER
        if single
        else replace(FIX_THE_WORKER, label="Fix the dependency these workers share"),
    ]
    if bridge:
        paths.append(NextPath("Error charts in Oban Web", BRIDGE, "/oban/jobs"))
    severity: Severity = "critical" if group.discarded else "warning"
    return Attention(
        "failing_worker",
        severity,
        title,
        why,
        group.last_failed_at,
        paths,
        affected=[] if single else group.workers[:LISTED_WORKERS],
        more_affected=truncated or len(group.workers) > LISTED_WORKERS,
    )


def _discarded(
    count: Count, latest: job_failures.DiscardedJob, now: datetime, bridge: bool
) -> Attention:
    estimate = " (estimate)" if count.kind == "estimate" else ""
    plural = "" if count.kind == "exact" and count.value == 1 else "s"
    why = (
        f"{count}{estimate} discarded job{plural} will not run again; the latest, job {latest.id} "
        f"({latest.worker}), after {latest.attempt} of {latest.max_attempts} attempts "
        f"{ago(latest.discarded_at, now)}."
    )
    paths = [
        NextPath("Review discarded jobs (retry in bulk)", NATIVE, "/jobs?state=discarded"),
    ]
    if bridge:
        paths.append(
            NextPath("Browse discarded jobs in Oban Web", BRIDGE, "/oban/jobs?state=discarded")
        )
    # It names the latest job: shown to viewers who may view that job.
    subject = Resource("job", str(latest.id))
    return Attention(
        "discarded", "info", "Discarded jobs", why, latest.discarded_at, paths, subject
    )
