"""The evidence bundle of a workflow: where it is (running, waiting on which steps, stuck
on a missed release, or how it finished and because of which step), its chronology from
its own row, its steps' jobs and its audit trail, and how complete that picture is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..db import Database
from ..display import Display
from ..read_models import workflows as model
from ..read_models.common import FIX_THE_WORKER, NATIVE, NextPath, ago, utc
from .bundle import ChronologyItem, EvidenceBundle, Fact, with_query
from .bundle import open_subject as open_evidence
from .completeness import workflow_completeness

# Steps read for one bundle; a larger workflow's bundle says its lists were cut.
STEP_LIMIT = 500
NAMED = 5  # steps named one by one in a sentence


def _names(steps: Sequence[model.StepView]) -> str:
    shown = ", ".join(s.name for s in steps[:NAMED])
    return shown + (f" and {len(steps) - NAMED} more" if len(steps) > NAMED else "")


def _forensics(resource_type: str, resource_id: str) -> str:
    return with_query("/forensics", resource_type=resource_type, resource_id=resource_id)


async def workflow_bundle(
    db: Database,
    display: Display,
    raw_id: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    workflow_id = model.parse_workflow_id(raw_id)
    async with db.connection() as conn:
        row = await model.fetch_workflow(conn, workflow_id) if workflow_id else None
        raw_steps: list[Mapping[str, Any]] = []
        if row is not None and workflow_id is not None:
            raw_steps = await model.fetch_steps(conn, workflow_id, limit=STEP_LIMIT)
        evidence = await open_evidence(conn, display, "workflow", raw_id, field="id", now=now)
    if row is None:
        return evidence.missing(
            diagnosis=f"Workflow {evidence.label} is not in powertools_workflows.",
            completeness=workflow_completeness(exists=False, has_audit=bool(evidence.audit)),
            index=NextPath("All workflows", NATIVE, "/workflows"),
            window_start=now - window,
        )

    wid = str(row["id"])
    shown = model.workflow_row(display, row)
    steps = [model.step_view(display, wid, r) for r in raw_steps]
    by_key = {s.key: s for s in steps}
    total = shown.progress.total
    missing_jobs = [s for s in steps if s.state == "missing"]
    completeness = workflow_completeness(
        exists=True,
        has_audit=bool(evidence.audit),
        steps_total=total,
        steps_read=len(steps),
        jobs_missing=len(missing_jobs),
        truncated=evidence.audit_truncated,
    )

    items = evidence.audit_items()
    items.append(ChronologyItem(shown.inserted_at, "workflow", "inserted", f"{total} steps"))
    if shown.started_at and shown.started_at != shown.inserted_at:
        items.append(ChronologyItem(shown.started_at, "workflow", "started"))
    if shown.finished_at:
        items.append(ChronologyItem(shown.finished_at, "workflow", f"finished {shown.state}"))
    for s, r in zip(steps, raw_steps, strict=True):
        href = s.href
        if r["attempted_at"] is not None:
            items.append(
                ChronologyItem(
                    utc(r["attempted_at"]),
                    "step",
                    f"step {s.name} started",
                    f"job {s.job_id}, attempt {s.attempt}",
                    href=href,
                )
            )
        if s.finished_at is not None and s.outcome:
            items.append(
                ChronologyItem(
                    s.finished_at,
                    "step",
                    f"step {s.name} {s.outcome}",
                    s.cancelled_by or "",
                    href=href,
                )
            )

    discarded = [s for s in steps if s.outcome == "discarded"]
    cancelled = [s for s in steps if s.outcome == "cancelled"]
    taken_down = [s for s in cancelled if s.cancelled_by]
    running = [s for s in steps if s.state == "executing"]
    stuck = [s for s in steps if s.stuck]
    waiting = [s for s in steps if s.outcome is None and s.state == "suspended" and not s.stuck]
    ready = [s for s in steps if s.state in ("available", "scheduled", "retryable")]
    operator = next(
        (
            a
            for a in evidence.audit
            if a.action == "workflow.cancelled" and a.outcome == "succeeded"
        ),
        None,
    )

    details: list[str] = []
    state = shown.state
    progress = shown.progress.words()
    if stuck:
        state = "stuck"
        diagnosis = (
            f"Stuck: {len(stuck)} step(s) ({_names(stuck)}) are still suspended although every "
            "dependency has finished — a missed release. The periodic workflow repair "
            f"releases them and records it. {progress}."
        )
    elif shown.state == "completed":
        diagnosis = f"Completed {ago(shown.finished_at, now)}: all {total} steps completed."
    elif shown.state in ("cancelled", "discarded"):
        if discarded:
            cause = (
                f"step {_names(discarded)} was discarded (its attempts ran out or an operator "
                "discarded its job)"
            )
        elif operator is not None:
            cause = f"{operator.actor} cancelled it (audit event {operator.id})"
        else:
            roots = [s for s in cancelled if not s.cancelled_by] or cancelled
            cause = f"step {_names(roots)} was cancelled"
        diagnosis = (
            f"{shown.state.capitalize()} {ago(shown.finished_at, now)}: {cause}. {progress}."
        )
        if taken_down:
            details.append(
                f"{len(taken_down)} step(s) were cancelled without running because a "
                f"dependency did not complete: {_names(taken_down)}."
            )
    elif shown.state == "pending":
        diagnosis = (
            f"Pending: it starts when step {shown.parent_step} of its parent workflow is released."
        )
    else:
        parts = []
        if running:
            parts.append(f"{_names(running)} executing")
        if ready:
            parts.append(f"{_names(ready)} ready to run")
        if waiting:
            blockers = sorted(
                {
                    by_key[d].name
                    for s in waiting
                    for d in s.dep_keys
                    if d in by_key and by_key[d].outcome is None
                }
            )
            on = f" on {', '.join(blockers[:NAMED])}" if blockers else ""
            parts.append(f"{len(waiting)} step(s) waiting{on}")
        diagnosis = f"Running: {'; '.join(parts) or 'no step is running now'}. {progress}."
        if discarded or cancelled:
            details.append(
                f"{len(discarded)} step(s) discarded and {len(cancelled)} cancelled so far; "
                "their dependents that ignore failures carry on."
            )
    if missing_jobs:
        details.append(
            f"{len(missing_jobs)} step job(s) are no longer in oban_jobs (pruned): "
            f"{_names(missing_jobs)}."
        )
    if len(steps) < total:
        details.append(f"Only the first {len(steps)} of {total} steps (by name) were read.")

    actions = model.applicable(row, {})
    labels = {"cancel_workflow": "Cancel", "retry_workflow": "Retry"}
    page_label = (
        " / ".join(labels[a] for a in actions) + " workflow" if actions else "Workflow details"
    )
    paths = [NextPath(page_label, NATIVE, f"/workflows/{wid}")]
    if stuck:
        paths[0] = NextPath(
            page_label,
            NATIVE,
            f"/workflows/{wid}",
            note="The repair releases stuck steps by itself; nothing else is needed.",
        )
    for s in discarded[:NAMED]:
        if s.job_id:
            paths.append(
                NextPath(
                    f"Evidence for step {s.name}'s job", NATIVE, _forensics("job", str(s.job_id))
                )
            )
    if discarded:
        paths.append(FIX_THE_WORKER)
    if shown.parent_id:
        paths.append(NextPath("Parent workflow", NATIVE, _forensics("workflow", shown.parent_id)))
    paths.append(evidence.audit_path())

    facts = [
        Fact("Name", shown.name),
        Fact("State", shown.state),
        Fact("Progress", progress),
        Fact(
            "Started",
            f"{shown.started_at:%Y-%m-%d %H:%M:%S} UTC" if shown.started_at else "not yet",
        ),
        Fact(
            "Finished",
            f"{shown.finished_at:%Y-%m-%d %H:%M:%S} UTC" if shown.finished_at else "not yet",
        ),
    ]
    if shown.parent_id:
        facts.append(Fact("Part of", f"step {shown.parent_step} of workflow {shown.parent_id}"))
    return evidence.bundle(
        state=state,
        diagnosis=diagnosis,
        details=details,
        facts=facts,
        items=items,
        completeness=completeness,
        next_paths=paths,
        window_start=shown.inserted_at or now - window,
    )
