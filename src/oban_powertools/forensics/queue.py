"""The evidence bundle of a queue: the nodes running it, its stored decision, its load,
and its audit trail."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..db import Database
from ..display import Display
from ..read_models import queues as queues_model
from ..read_models.common import BRIDGE, HOST, NATIVE, NextPath, ago
from .bundle import ChronologyItem, EvidenceBundle, Fact, open_subject, with_query
from .completeness import queue_completeness


async def queue_bundle(
    db: Database,
    display: Display,
    name: str,
    *,
    bridge: bool,
    now: datetime,
    window: timedelta,
) -> EvidenceBundle:
    views = await queues_model.list_queues(db, display, queue=name)
    async with db.connection() as conn:
        evidence = await open_subject(conn, display, "queue", name, field="queue", now=now)
    view = views[0] if views else None
    items = evidence.audit_items()
    if view is None:
        completeness = queue_completeness(known=bool(evidence.audit), live_nodes=0, stale_nodes=0)
        diagnosis = f"No node runs queue {evidence.label} and no decision is stored for it."
        return evidence.missing(
            diagnosis=diagnosis,
            completeness=completeness,
            index=NextPath("All queues", NATIVE, "/queues"),
            window_start=now - window,
            exists=bool(evidence.audit),  # known from its audit trail alone
            audit_note=False,
        )
    live = view.live_nodes
    stale = sum(1 for n in view.nodes if n.freshness == "stale")
    completeness = queue_completeness(
        known=True, live_nodes=live, stale_nodes=stale, truncated=evidence.audit_truncated
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
        NextPath("Jobs in this queue", NATIVE, with_query("/jobs", queue=name)),
        evidence.audit_path(),
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
    return evidence.bundle(
        state=state,
        diagnosis=diagnosis,
        details=list(view.notes),
        facts=facts,
        items=items,
        completeness=completeness,
        next_paths=paths,
        window_start=now - window,
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
