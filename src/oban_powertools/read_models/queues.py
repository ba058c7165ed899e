"""Queues across nodes: what each node reports, the stored decision, and bounded counts.

``oban_producers`` is what nodes say right now (one row per node and queue, refreshed
every 15 s); ``powertools_queue_states`` is the operator's persisted decision, which nodes
re-apply after a restart. The page shows both and says where they disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..db import Conn, Database
from ..db.queries import Statements
from ..display import Display
from ..seams import Resource
from .common import EXACT_BELOW_FACTOR, PRODUCER_LIVE_SECONDS, Count, bounded_count, utc
from .principal import ShownPrincipal, shown_stored

QUEUE_STATES = ("available", "scheduled", "executing", "retryable")
QUEUE_COUNT_CAP = 1000
MAX_QUEUES = 500
FRESH_SECONDS = 45  # three missed refreshes make a node "stale", then "gone" after 90 s

Q = Statements(
    queue_states="queue_names",
    producers="queue_producers",
    oban_jobs="queue_counts",
)


@dataclass(frozen=True, slots=True)
class NodeView:
    node: str
    limit: int | None
    paused: bool
    started_at: datetime | None
    updated_at: datetime | None
    age_seconds: int
    freshness: str  # "fresh", "stale", "gone"


@dataclass(frozen=True, slots=True)
class QueueView:
    key: str  # the queue's name as stored: the target of links and actions
    name: str  # the name as the display policy shows it
    decided_paused: bool | None  # None: no stored decision
    limit_override: int | None
    decided_by: ShownPrincipal | None
    decision_reason: str | None
    decided_at: datetime | None
    nodes: list[NodeView]
    counts: dict[str, Count]
    notes: list[str] = field(default_factory=list)

    @property
    def paused(self) -> bool:
        if self.decided_paused is not None:
            return self.decided_paused
        live = [n for n in self.nodes if n.freshness != "gone"]
        return bool(live) and all(n.paused for n in live)

    @property
    def live_nodes(self) -> int:
        return sum(1 for n in self.nodes if n.freshness != "gone")

    @property
    def effective_limit(self) -> int | None:
        if self.limit_override is not None:
            return self.limit_override
        limits = [n.limit for n in self.nodes if n.limit is not None]
        return max(limits) if limits else None


def _freshness(age: int) -> str:
    if age <= FRESH_SECONDS:
        return "fresh"
    if age <= PRODUCER_LIVE_SECONDS:
        return "stale"
    return "gone"


def _limit(meta: Any) -> int | None:
    value = meta.get("local_limit") if isinstance(meta, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def queue_counts(
    conn: Conn,
    queues: Sequence[str],
    *,
    states: Sequence[str] = QUEUE_STATES,
    cap: int = QUEUE_COUNT_CAP,
) -> dict[str, dict[str, Count]]:
    """Each queue's jobs by state (those of ``states`` it has): exact up to ``cap``, else
    oban's planner estimate."""
    if not queues:
        return {}
    cur = await conn.execute(
        Q.queue_counts,
        {
            "queues": list(queues),
            "states": list(states),
            "cap": cap,
            "exact_below": cap * EXACT_BELOW_FACTOR,
        },
    )
    counts: dict[str, dict[str, Count]] = {q: {} for q in queues}
    for row in await cur.fetchall():
        counts[row["queue"]][row["state"]] = bounded_count(row["n"], row["estimate"], cap)
    return counts


async def list_queues(
    db: Database, display: Display, *, queue: str | None = None
) -> list[QueueView]:
    async with db.connection() as conn:
        cur = await conn.execute(Q.queue_names, {"queue": queue, "limit": MAX_QUEUES})
        decisions = await cur.fetchall()
        names = [r["queue"] for r in decisions]
        cur = await conn.execute(Q.queue_producers, {"queues": names})
        producers = await cur.fetchall()
        counts = await queue_counts(conn, names)
    by_queue: dict[str, list[dict[str, Any]]] = {}
    for p in producers:
        by_queue.setdefault(p["queue"], []).append(dict(p))
    views = []
    for d in decisions:
        name = d["queue"]
        resource = Resource("queue", name)
        nodes = [
            NodeView(
                node=display.text("node", p["node"], resource=resource, field="node"),
                limit=_limit(p["meta"]),
                paused=bool((p["meta"] or {}).get("paused", False)),
                started_at=utc(p["started_at"]),
                updated_at=utc(p["updated_at"]),
                age_seconds=int(p["age_seconds"] or 0),
                freshness=_freshness(int(p["age_seconds"] or 0)),
            )
            for p in by_queue.get(name, [])
        ]
        view = QueueView(
            name=display.text("queue", name, resource=resource, field="queue"),
            key=name,
            decided_paused=d["paused"],
            limit_override=d["limit_override"],
            decided_by=shown_stored(display, d, "changed_by", resource=resource),
            decision_reason=display.optional(
                "reason", d["reason"], resource=resource, field="reason"
            ),
            decided_at=utc(d["decided_at"]),
            nodes=nodes,
            counts=counts.get(name, {}),
        )
        view.notes.extend(_disagreements(view))
        views.append(view)
    return views


def _disagreements(view: QueueView) -> list[str]:
    """Where nodes do not (yet) run what the stored decision says."""
    notes = []
    live = [n for n in view.nodes if n.freshness != "gone"]
    if not live:
        notes.append("No live node runs this queue; the stored decision applies when one starts.")
        return notes
    if view.decided_paused is True:
        running = [n.node for n in live if not n.paused]
        if running:
            notes.append(
                "Paused by decision, but still fetching on "
                + ", ".join(running[:5])
                + " (the signal may not have arrived yet)."
            )
    elif view.decided_paused is False:
        paused = [n.node for n in live if n.paused]
        if paused:
            notes.append("Paused on " + ", ".join(paused[:5]) + " although the decision is resume.")
    elif any(n.paused for n in live):
        notes.append("Paused on some nodes without a stored decision (paused outside Powertools).")
    if view.limit_override is not None:
        other = [n.node for n in live if n.limit is not None and n.limit != view.limit_override]
        if other:
            notes.append(
                f"Scaled to {view.limit_override}, but "
                + ", ".join(other[:5])
                + " still report another limit."
            )
    stale = [n.node for n in view.nodes if n.freshness != "fresh"]
    if stale:
        notes.append("Not heard from recently: " + ", ".join(stale[:5]) + ".")
    return notes
