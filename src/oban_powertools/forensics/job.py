"""The evidence bundle of a job: its row, its attempts and errors, the cron slot that
enqueued it, and its audit trail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..config import DEFAULT_LIFELINE_GRACE_SECONDS
from ..db import Database
from ..db.queries import Statements
from ..display import Display
from ..read_models import job_detail
from ..read_models.batches import batch_of_job
from ..read_models.chains import chain_of_job
from ..read_models.common import (
    BRIDGE,
    FIX_THE_WORKER,
    HOST,
    NATIVE,
    NextPath,
    ago,
    duration,
    utc,
)
from ..read_models.explain import Explanation, explain
from ..read_models.lifeline import orphan_sentence
from ..read_models.unique import unique_facts
from .bundle import ChronologyItem, EvidenceBundle, Fact, audit_path, open_subject, with_query
from .completeness import job_completeness

Q = Statements(cron_slots="job_slots")


def segment(value: str) -> str:
    return quote(value, safe="")


async def job_bundle(
    db: Database,
    display: Display,
    raw_id: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
    explained: Explanation | None = None,
    lifeline_grace: float = DEFAULT_LIFELINE_GRACE_SECONDS,
) -> EvidenceBundle:
    """``explained``: the job's explanation when the caller has it already (the job page
    shows it too), so the explainer runs once per view. ``lifeline_grace``: the host's
    ``Config.lifeline_grace_seconds``, when an executing job counts as orphaned."""
    text = raw_id.strip()
    job_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    async with db.connection() as conn:
        row = None
        slots: list[Any] = []
        if job_id is not None:
            cur = await conn.execute(
                # Live as the lifeline judges it: a heartbeat within the grace.
                job_detail.Q.job_detail,
                {"id": job_id, "live": lifeline_grace},
            )
            row = await cur.fetchone()
            cur = await conn.execute(Q.job_slots, {"id": job_id})
            slots = list(await cur.fetchall())
        unique = (
            None
            if row is None
            else await unique_facts(conn, row["id"], row["meta"] or {}, row["inserted_at"])
        )
        evidence = await open_subject(conn, display, "job", raw_id, field="id", now=now)
    items = evidence.audit_items()
    if row is None:
        return evidence.missing(
            diagnosis=f"Job {evidence.label} is not in oban_jobs (pruned or never existed).",
            completeness=job_completeness(exists=False, has_audit=bool(evidence.audit)),
            index=NextPath("All jobs", NATIVE, "/jobs"),
            window_start=now - window,
        )

    job = job_detail.detail_from_row(display, row)
    meta = row["meta"] or {}
    rescued = meta.get("rescued") if isinstance(meta.get("rescued"), int) else 0
    completeness = job_completeness(
        exists=True,
        has_audit=bool(evidence.audit),
        state=job.state,
        attempt=job.attempt,
        errors_recorded=len(job.errors),
        rescued=rescued or 0,
        truncated=evidence.audit_truncated,
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
        orphan = orphan_sentence(
            node=node,
            producer=job.producer,
            last_heartbeat=job.last_heartbeat,
            grace=lifeline_grace,
            now=now,
        )
        if orphan is not None or not job.producer_live:
            state = "orphaned"
            diagnosis = (
                f"Orphaned: {orphan}. It ran for {running} there and will not finish."
                if orphan is not None
                else f"Executing for {running} on {node}, which has no live producer: the "
                "node is gone or stuck and the job will not finish there."
            )
            paths.append(
                NextPath("Preview its rescue (Lifeline section)", NATIVE, "/queues#lifeline")
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
        paths.append(FIX_THE_WORKER)
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
            with_query("/forensics", resource_type="queue", resource_id=row["queue"]),
        )
    )
    if job.cron_name:
        paths.append(NextPath("Cron entry " + job.cron_name, NATIVE, f"/cron/{meta['cron_name']}"))
    paths.append(audit_path("job", str(job.id)))
    if bridge:
        paths.append(NextPath("Inspect job in Oban Web", BRIDGE, f"/oban/jobs/{job.id}"))
    if rescued:
        details.append(f"Rescued {rescued} time(s) after its node went away.")
    if unique is not None:
        holder = next((o for o in unique.others if o.holds), None)
        details.append(
            f"Unique by key {unique.key} ({', '.join(unique.fields)}): "
            + ("it holds the key and blocks duplicates now." if unique.holds else "its key is free")
            + ("" if unique.holds or holder is None else f"; job {holder.id} holds it now.")
        )
        if holder is not None:
            paths.append(
                NextPath(f"Job {holder.id}, which holds its key", NATIVE, f"/jobs/{holder.id}")
            )
    # A chain link names its chain and its place in it; a batch job (or a batch's
    # callback) its batch. The marks are set at insert: plain jobs cost no query.
    chain = await chain_of_job(db, display, job.id) if "chain" in meta else None
    if chain is not None:
        details.append(chain.says)
        paths.append(NextPath(f"Chain {chain.key}", NATIVE, "/chains/" + segment(chain.raw_key)))
    batch = (
        await batch_of_job(db, display, job.id)
        if "batch_id" in meta or "batch_callback_of" in meta
        else None
    )
    if batch is not None:
        details.append(batch.says)
        paths.append(NextPath(f"Batch {batch.name}", NATIVE, f"/batches/{batch.id}"))
    if job.state in ("available", "scheduled", "retryable", "suspended", "cancelled"):
        # Why it is not running yet (a held workflow step or chain link: what holds it; a
        # step cancelled by a dependency: which one): the explainer's reasons (the job page
        # shows the same), and their next paths right after the job's own.
        explanation = explained or await explain(db, display, job.id, lifeline_grace=lifeline_grace)
        if explanation is not None:
            if job.state in ("available", "suspended"):
                diagnosis = explanation.summary
            details.extend(r.line() for r in explanation.reasons)
            if explanation.expected:
                details.append(f"Expected to start {explanation.expected}.")
            found = [p for r in explanation.reasons for p in r.next_paths]
            paths[1:1] = [p for i, p in enumerate(found) if p not in paths and p not in found[:i]]
    facts = [
        Fact("State", job.state),
        Fact("Worker", job.worker),
        Fact("Queue", job.queue),
        Fact("Attempts", f"{job.attempt} of {job.max_attempts}"),
        Fact("Last node", node),
    ]
    return evidence.bundle(
        state=state,
        diagnosis=diagnosis,
        details=details,
        facts=facts,
        items=items,
        completeness=completeness,
        next_paths=paths,
        window_start=utc(row["inserted_at"]) or now - window,
    )
