"""The oban_jobs rows of a batch insert, shared by the unique, chain/batch and workflow
inserters: the column arrays each ``insert_jobs`` statement unnests, and what its
returned rows set back on the jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from oban.job import Job
from psycopg.types.json import Jsonb

__all__ = ["job_columns", "take_row", "utc"]


def utc(value: datetime | None) -> datetime | None:
    # oban_jobs' timestamps are UTC without a zone, as oban writes them.
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def job_columns(jobs: Sequence[Job], prefix: str) -> dict[str, Any]:
    """The parameters of an ``insert_jobs`` statement for ``jobs``, in order."""
    return {
        "table": f"{prefix}.oban_jobs",
        "channel": f"{prefix}.oban_insert",
        "args": [Jsonb(j.args) for j in jobs],
        "meta": [Jsonb(j.meta) for j in jobs],
        "inserted_at": [utc(j.inserted_at) for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs],
        "priority": [j.priority for j in jobs],
        "queue": [j.queue for j in jobs],
        "scheduled_at": [utc(j.scheduled_at) for j in jobs],
        "state": [str(j.state) for j in jobs],
        "tags": [Jsonb(list(j.tags)) for j in jobs],
        "worker": [j.worker for j in jobs],
    }


def take_row(job: Job, row: Mapping[str, Any]) -> None:
    """Set on ``job`` what the database decided for it (an ``insert_jobs`` row)."""
    job.id = row["id"]
    job.inserted_at = row["inserted_at"]
    job.queue = row["queue"]
    job.scheduled_at = row["scheduled_at"]
    job.state = row["state"]
