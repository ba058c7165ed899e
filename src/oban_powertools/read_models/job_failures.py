"""Failing, stuck and discarded jobs: what the overview asks the jobs table about.

Each read is bounded by its own index and a cap, so its cost does not grow with the
backlog; every value leaves through the display policy, error text with the job's own
secrets masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import Conn
from ..db.queries import Statements
from ..display import Display, error_line, job_redactions, merge_secrets
from ..seams import Resource
from .common import PRODUCER_LIVE_SECONDS, utc

Q = Statements(oban_jobs="failing_workers last_errors stuck_jobs recent_discarded")


@dataclass(frozen=True, slots=True)
class FailingWorker:
    worker: str
    queues: list[str]
    failures: int
    retryable: int
    discarded: int
    last_failed_at: datetime | None
    last_job_id: int
    last_error: str
    sampled: bool  # the failure scan hit its cap; counts are lower bounds


@dataclass(frozen=True, slots=True)
class StuckJob:
    id: int
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    attempted_at: datetime | None
    running_seconds: int | None
    node: str
    producer_live: bool

    @property
    def orphaned(self) -> bool:
        return not self.producer_live


@dataclass(frozen=True, slots=True)
class DiscardedJob:
    id: int
    queue: str
    worker: str
    attempt: int
    max_attempts: int
    discarded_at: datetime | None
    last_error: str


def _record_secrets(display: Display, resource: Resource, row: Mapping[str, Any]) -> dict[str, str]:
    """Values the policy hides in a job's args and meta, to mask wherever they reappear."""
    return merge_secrets(
        display.tree(
            "args", row["args"], resource=resource, redact=job_redactions(row.get("meta"))
        ).secrets,
        display.tree("meta", row.get("meta") or {}, resource=resource).secrets,
    )


async def failing_workers(
    conn: Conn,
    display: Display,
    *,
    window_seconds: int = 24 * 3600,
    sample: int = 1000,
    limit: int = 20,
) -> list[FailingWorker]:
    cur = await conn.execute(
        Q.failing_workers, {"window": window_seconds, "sample": sample, "limit": limit}
    )
    groups = await cur.fetchall()
    if not groups:
        return []
    cur = await conn.execute(Q.last_errors, {"ids": [g["last_job_id"] for g in groups]})
    last = {r["id"]: r for r in await cur.fetchall()}
    sampled = sum(g["failures"] for g in groups) >= sample
    found = []
    for g in groups:
        job = last.get(g["last_job_id"])
        line = ""
        if job is not None and job["last_error"]:
            resource = Resource("job", str(job["id"]))
            known = _record_secrets(display, resource, job)
            text = display.free_text(
                "error", job["last_error"], resource=resource, field="error", known=known
            )
            line = error_line(text)
        found.append(
            FailingWorker(
                worker=display.text("worker", g["worker"], field="worker"),
                queues=[display.text("queue", q, field="queue") for q in g["queues"] or []],
                failures=g["failures"],
                retryable=g["retryable"],
                discarded=g["discarded"],
                last_failed_at=utc(g["last_failed_at"]),
                last_job_id=g["last_job_id"],
                last_error=line,
                sampled=sampled,
            )
        )
    return found


async def stuck_jobs(
    conn: Conn,
    display: Display,
    *,
    stuck_after: int,
    limit: int = 50,
    scan: int = 5000,
) -> list[StuckJob]:
    cur = await conn.execute(
        Q.stuck_jobs,
        {
            "live": PRODUCER_LIVE_SECONDS,
            "stuck_after": stuck_after,
            "limit": limit,
            "scan": scan,
        },
    )
    found = []
    for r in await cur.fetchall():
        resource = Resource("job", str(r["id"]))
        nodes: Sequence[str] = r["attempted_by"] or []
        found.append(
            StuckJob(
                **_attempts(display, r, resource),
                attempted_at=utc(r["attempted_at"]),
                running_seconds=r["running_seconds"],
                node=display.text("node", nodes[0], resource=resource, field="attempted_by")
                if nodes
                else "unknown node",
                producer_live=bool(r["producer_live"]),
            )
        )
    return found


async def recent_discarded(conn: Conn, display: Display, *, limit: int = 5) -> list[DiscardedJob]:
    cur = await conn.execute(Q.recent_discarded, {"limit": limit})
    found = []
    for r in await cur.fetchall():
        resource = Resource("job", str(r["id"]))
        known = _record_secrets(display, resource, r)
        line = ""
        if r["last_error"]:
            line = error_line(
                display.free_text(
                    "error", r["last_error"], resource=resource, field="error", known=known
                )
            )
        found.append(
            DiscardedJob(
                **_attempts(display, r, resource),
                discarded_at=utc(r["discarded_at"]),
                last_error=line,
            )
        )
    return found


def _attempts(display: Display, r: Mapping[str, Any], resource: Resource) -> dict[str, Any]:
    """What a stuck and a discarded job both show: the job, where it runs, its attempts."""
    return {
        "id": r["id"],
        "queue": display.text("queue", r["queue"], resource=resource, field="queue"),
        "worker": display.text("worker", r["worker"], resource=resource, field="worker"),
        "attempt": r["attempt"],
        "max_attempts": r["max_attempts"],
    }
