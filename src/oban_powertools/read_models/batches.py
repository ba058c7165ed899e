"""What the batch pages show: the list of batches (``/batches``), one batch with its
progress counters and the callbacks it enqueued, linked to their jobs
(``/batches/{id}``), and the batch section of a job page. Every value bound for a page
passes the display policy here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ..batches.model import CALLBACK_KINDS
from ..db import Database
from ..db.queries import Statements
from ..display import Display
from ..seams import Resource
from .common import utc

__all__ = [
    "BatchCallback",
    "BatchOfJob",
    "BatchSummary",
    "BatchView",
    "batch_of_job",
    "batch_view",
    "batches",
]

Q = Statements(chain_views="batches_page batch batch_callbacks batch_of_job batch_jobs_sample")
SAMPLE = 20


@dataclass(frozen=True, slots=True)
class BatchSummary:
    id: str
    name: str
    total: int
    completed: int
    cancelled: int
    discarded: int
    inserted_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> int:
        return self.completed + self.cancelled + self.discarded

    @property
    def state(self) -> str:
        if self.finished_at is None:
            return "executing"
        return "completed" if self.completed == self.total else "discarded"


@dataclass(frozen=True, slots=True)
class BatchCallback:
    kind: str
    worker: str
    fired: bool
    job_id: int | None
    job_state: str | None
    at: datetime | None


@dataclass(frozen=True, slots=True)
class BatchJob:
    job_id: int
    outcome: str | None
    job_state: str | None


@dataclass(frozen=True, slots=True)
class BatchView:
    summary: BatchSummary
    callbacks: list[BatchCallback]
    jobs: list[BatchJob]


@dataclass(frozen=True, slots=True)
class BatchOfJob:
    id: str
    name: str
    total: int
    finished: int
    callback_kind: str | None  # this job is that callback of the batch
    says: str


def _name(display: Display, batch_id: object, name: str) -> str:
    return display.text("batch_name", name, resource=Resource("batch", str(batch_id)), field="name")


def _summary(display: Display, r: dict[str, object]) -> BatchSummary:
    return BatchSummary(
        id=str(r["id"]),
        name=_name(display, r["id"], str(r["name"])),
        total=int(r["jobs_total"]),  # type: ignore[call-overload]
        completed=int(r["jobs_completed"]),  # type: ignore[call-overload]
        cancelled=int(r["jobs_cancelled"]),  # type: ignore[call-overload]
        discarded=int(r["jobs_discarded"]),  # type: ignore[call-overload]
        inserted_at=utc(r.get("inserted_at")),  # type: ignore[arg-type]
        finished_at=utc(r.get("finished_at")),  # type: ignore[arg-type]
    )


async def batches(db: Database, display: Display, limit: int = 100) -> list[BatchSummary]:
    async with db.connection() as conn:
        cur = await conn.execute(
            Q.batches_page, {"before_at": None, "before_id": None, "limit": limit}
        )
        return [_summary(display, r) for r in await cur.fetchall()]


def parse_batch_id(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


async def batch_view(db: Database, display: Display, batch_id: UUID) -> BatchView | None:
    async with db.connection() as conn:
        cur = await conn.execute(Q.batch, {"id": batch_id})
        row = await cur.fetchone()
        if row is None:
            return None
        cur = await conn.execute(Q.batch_callbacks, {"id": batch_id})
        fired = {r["kind"]: r for r in await cur.fetchall()}
        cur = await conn.execute(Q.batch_jobs_sample, {"id": batch_id, "limit": SAMPLE})
        sample = [BatchJob(r["job_id"], r["outcome"], r["job_state"]) for r in await cur.fetchall()]
    resource = Resource("batch", str(batch_id))
    callbacks = []
    specs = row["callbacks"] or {}
    for kind in CALLBACK_KINDS:
        if kind not in specs:
            continue
        done = fired.get(kind)
        callbacks.append(
            BatchCallback(
                kind=kind,
                worker=display.text(
                    "worker", specs[kind].get("worker", "?"), resource=resource, field="worker"
                ),
                fired=done is not None,
                job_id=done["job_id"] if done else None,
                job_state=done["job_state"] if done else None,
                at=utc(done["inserted_at"]) if done else None,
            )
        )
    return BatchView(_summary(display, row), callbacks, sample)


async def batch_of_job(db: Database, display: Display, job_id: int) -> BatchOfJob | None:
    async with db.connection() as conn:
        cur = await conn.execute(Q.batch_of_job, {"job_id": job_id})
        row = await cur.fetchone()
    if row is None:
        return None
    name = _name(display, row["id"], row["name"])
    finished = row["jobs_completed"] + row["jobs_cancelled"] + row["jobs_discarded"]
    if row["callback_kind"]:
        says = f"The {row['callback_kind']} callback of batch {name}."
    else:
        says = f"One of the {row['jobs_total']} jobs of batch {name}: {finished} finished."
    return BatchOfJob(str(row["id"]), name, row["jobs_total"], finished, row["callback_kind"], says)
