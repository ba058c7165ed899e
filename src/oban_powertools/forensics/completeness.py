"""How sure an evidence bundle can be: the completeness label and why (pure rules).

Exactly one label per bundle, from the product's wording contract:

``complete``
    Every source that could hold evidence for the window was there and was read in full:
    for a cron entry the scheduler's coverage spans cover the whole window and every job a
    slot points to still exists; for a job every attempt left its outcome; for a queue every
    node running it reported recently.
``partial evidence``
    Some evidence is there but with holes: coverage gaps (minutes no leader evaluated),
    pruned jobs behind some slots, attempts without a recorded outcome (a rescued orphan),
    stale nodes, or a list cut at its cap.
``history unavailable``
    The subject is known but the source that would show its history is absent: no coverage
    rows at all in the window, every slot's job pruned, the job row itself pruned (only the
    audit trail remains), or no node reporting the queue.
``unknown``
    Nothing at all is known about the subject: no row and no audit trail. The page cannot
    tell a typo from a subject whose every trace was removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

COMPLETE: Final = "complete"
PARTIAL: Final = "partial evidence"
UNAVAILABLE: Final = "history unavailable"
UNKNOWN: Final = "unknown"
LABELS = (COMPLETE, PARTIAL, UNAVAILABLE, UNKNOWN)

type Label = Literal["complete", "partial evidence", "history unavailable", "unknown"]

MINUTE = timedelta(minutes=1)
# The scheduler evaluates once a minute; a span ending this close to "now" still covers it.
TAIL_TOLERANCE = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Completeness:
    label: Label
    reasons: list[str] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        """True when certainty is bounded (every label but ``complete``)."""
        return self.label != COMPLETE


@dataclass(frozen=True, slots=True)
class Gap:
    """Minutes ``first``..``last`` (inclusive) that no scheduler span covered."""

    first: datetime
    last: datetime

    @property
    def minutes(self) -> int:
        return int((self.last - self.first) / MINUTE) + 1


def coverage_gaps(
    window_start: datetime,
    window_end: datetime,
    spans: Sequence[tuple[datetime, datetime]],
    *,
    tail_tolerance: timedelta = TAIL_TOLERANCE,
) -> list[Gap]:
    """Minutes of the window outside every ``(first_minute, last_minute)`` span.

    Spans are inclusive and may overlap or touch (two leaders, a hand-over). Minutes within
    ``tail_tolerance`` of the window's end are not a gap yet: the scheduler simply has not
    reached them.
    """
    start = _floor(window_start)
    end = _floor(window_end) - tail_tolerance
    if end < start:
        return []
    gaps: list[Gap] = []
    cursor = start  # first minute not yet known to be covered
    for first, last in sorted(spans):
        if last < cursor:
            continue
        if first > end:
            break
        if first > cursor:
            gaps.append(Gap(cursor, min(first - MINUTE, end)))
        cursor = max(cursor, last + MINUTE)
        if cursor > end:
            return gaps
    if cursor <= end:
        gaps.append(Gap(cursor, end))
    return gaps


def _floor(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def cron_completeness(
    *,
    exists: bool,
    has_audit: bool,
    spans: int,
    gaps: Sequence[Gap],
    referenced_jobs: int,
    missing_jobs: int,
    truncated: bool = False,
) -> Completeness:
    if not exists:
        return _absent(
            has_audit,
            unknown="no cron entry by this name and no audit trail for it",
            gone="the cron entry no longer exists; only its audit trail remains",
        )
    if spans == 0:
        return Completeness(
            UNAVAILABLE,
            [
                "the scheduler recorded no coverage in this window, so whether due minutes "
                "were evaluated cannot be shown"
            ],
        )
    if referenced_jobs and missing_jobs == referenced_jobs:
        return Completeness(
            UNAVAILABLE,
            [f"all {referenced_jobs} job(s) behind this window's slots were pruned"],
        )
    reasons = []
    if gaps:
        total = sum(g.minutes for g in gaps)
        reasons.append(
            f"{len(gaps)} coverage gap(s), {total} minute(s) in all, where no leader evaluated "
            "the schedule"
        )
    if missing_jobs:
        reasons.append(f"{missing_jobs} of {referenced_jobs} slot job(s) were pruned")
    return _graded(
        reasons,
        truncated=truncated,
        complete="scheduler coverage spans the whole window and every slot's job is still present",
    )


def job_completeness(
    *,
    exists: bool,
    has_audit: bool,
    state: str | None = None,
    attempt: int = 0,
    errors_recorded: int = 0,
    rescued: int = 0,
    truncated: bool = False,
) -> Completeness:
    if not exists:
        return _absent(
            has_audit,
            unknown="no job with this id and no audit trail for it",
            gone="the job row was pruned or deleted; only its audit trail remains",
        )
    reasons = []
    # Every finished failed attempt leaves an error; the current attempt may still be running
    # (executing) or have ended without one (completed, cancelled, discarded by an operator).
    expected = attempt if state == "retryable" else max(attempt - 1, 0)
    missing = max(expected - errors_recorded, 0)
    if rescued:
        reasons.append(
            f"{rescued} attempt(s) ended without a recorded outcome (rescued after the node "
            "running them went away)"
        )
    elif missing:
        reasons.append(f"{missing} attempt(s) left no recorded error")
    return _graded(
        reasons, truncated=truncated, complete="every attempt's outcome is recorded on the job"
    )


def workflow_completeness(
    *,
    exists: bool,
    has_audit: bool,
    steps_total: int = 0,
    steps_read: int = 0,
    jobs_missing: int = 0,
    truncated: bool = False,
) -> Completeness:
    """A workflow's picture is complete when every step was read and every step's job is
    still in oban_jobs (its attempts and times are the chronology)."""
    if not exists:
        return _absent(
            has_audit,
            unknown="no workflow with this id and no audit trail for it",
            gone="the workflow row was deleted; only its audit trail remains",
        )
    reasons = []
    if jobs_missing:
        reasons.append(f"{jobs_missing} step job(s) were pruned: their times are unknown")
    if steps_read < steps_total:
        reasons.append(f"only {steps_read} of {steps_total} steps were read")
    return _graded(
        reasons,
        truncated=truncated,
        complete="every step and every step's job is present",
    )


def queue_completeness(
    *,
    known: bool,
    live_nodes: int,
    stale_nodes: int,
    truncated: bool = False,
) -> Completeness:
    if not known:
        return Completeness(
            UNKNOWN, ["no node runs this queue, no decision is stored and no audit trail exists"]
        )
    if live_nodes == 0:
        return Completeness(
            UNAVAILABLE,
            ["no node reports this queue now, so what nodes actually run cannot be shown"],
        )
    reasons = []
    if stale_nodes:
        reasons.append(f"{stale_nodes} node(s) have not reported recently")
    return _graded(
        reasons, truncated=truncated, complete="every node running this queue reported recently"
    )


def _absent(has_audit: bool, *, unknown: str, gone: str) -> Completeness:
    """How complete the picture of a subject that is not there (any more) is: nothing is
    known without an audit trail, only that trail with one."""
    if not has_audit:
        return Completeness(UNKNOWN, [unknown])
    return Completeness(UNAVAILABLE, [gone])


def _graded(reasons: list[str], *, truncated: bool, complete: str) -> Completeness:
    """Partial for the reasons found (a list cut at its cap is one), else complete."""
    if truncated:
        reasons.append("some lists were cut at their cap")
    if reasons:
        return Completeness(PARTIAL, reasons)
    return Completeness(COMPLETE, [complete])
