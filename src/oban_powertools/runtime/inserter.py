"""Inserting jobs when some of them are unique (the ``query.insert_jobs`` hook).

A batch with a unique job in it is inserted by one statement (``db/queries/unique.sql``):

1. every job of the batch is inserted with ``INSERT ... ON CONFLICT DO NOTHING`` on the
   unique index: a duplicate (of a job in the table, or of one earlier in the batch) is
   not inserted, whatever the race between processes, because the database refuses the
   second key;
2. for the duplicates, the jobs holding their keys are read (through the unique index);
   a holder whose period is over gives its key up and the duplicate is inserted on a
   second try;
3. every other duplicate comes back as the job that holds its key, marked
   ``job.extra["conflict"] = True`` (and, with ``replace``, that job with the chosen
   fields updated).

A batch without duplicates is one statement, like oban's insert of one job.

All of it runs in the caller's transaction when ``conn=`` is given, so a rolled-back
host transaction leaves nothing; otherwise in one transaction on oban's pool. A batch without unique jobs is oban's own insert, untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oban.job import Job
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..db.queries import StatementsInSchema
from ..errors import UniqueConflictUnresolved
from ..unique.keys import unique_key
from ..unique.options import UniqueSpec, parse_unique
from ..unique.workers import unique_meta
from .job_rows import job_columns, take_row, utc

__all__ = ["UniqueJob", "insert_jobs", "unique_of"]

Q = StatementsInSchema(unique="expire_holders insert_jobs holders replace_holders")

# A holder can leave its unique states between our insert and our read of it (it
# completes, is cancelled): the key is then free and the job is inserted on a new try.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class UniqueJob:
    spec: UniqueSpec
    key: str


def unique_of(job: Job) -> UniqueJob | None:
    """The job's unique spec and key (from ``unique=`` on its worker or its insert), or
    None for a plain job."""
    spec = parse_unique((job.extra or {}).get("unique"), where=f"{job.worker}: unique")
    if spec is None:
        return None
    key = unique_key(spec, worker=job.worker, queue=job.queue, args=job.args, meta=job.meta)
    return UniqueJob(spec, key)


def _mark(job: Job, unique: UniqueJob) -> None:
    job.meta = unique_meta(
        unique.spec, worker=job.worker, queue=job.queue, args=job.args, meta=job.meta
    )


async def insert_jobs(
    jobs: Sequence[Job],
    uniques: Sequence[UniqueJob | None],
    *,
    prefix: str,
    pool: Any,
    conn: AsyncConnection[Any] | AsyncCursor[Any] | None = None,
) -> list[Job]:
    """Insert ``jobs`` (``uniques[i]`` is job i's, None for a plain one) through oban's
    ``pool``, or on the caller's ``conn`` (psycopg's, already unwrapped); see the module
    docstring. Returns the jobs in input order: inserted ones updated in place as oban
    does, duplicates replaced by the job holding their key."""
    for job, unique in zip(jobs, uniques, strict=True):
        if unique is not None:
            _mark(job, unique)
    if conn is not None:
        # The caller's transaction (or its autocommit) holds our statements as it holds
        # its own: a rollback takes the jobs with it.
        connection = conn.connection if isinstance(conn, AsyncCursor) else conn
        return await _insert(connection, jobs, uniques, prefix)
    # oban's pool hands out connections outside autocommit: the statements share one
    # transaction, committed when the connection goes back.
    async with pool.connection() as pooled:
        return await _insert(pooled, jobs, uniques, prefix)


async def _insert(
    conn: AsyncConnection[Any],
    jobs: Sequence[Job],
    uniques: Sequence[UniqueJob | None],
    prefix: str,
) -> list[Job]:
    results: list[Job | None] = [None] * len(jobs)
    pending = list(range(len(jobs)))
    cur = conn.cursor(row_factory=dict_row)
    for _ in range(ATTEMPTS):
        await cur.execute(Q.insert_jobs.at(prefix), job_columns([jobs[i] for i in pending], prefix))
        rows = await cur.fetchall()
        conflicts: list[int] = []
        for row in rows:
            index = pending[row["ord"] - 1]
            if row["id"] is None:
                conflicts.append(index)
                continue
            job = jobs[index]
            take_row(job, row)
            results[index] = job
        if not conflicts:
            break
        pending = await _resolve(cur, jobs, uniques, conflicts, results, prefix)
        if not pending:
            break
    else:
        raise UniqueConflictUnresolved(
            f"{len(pending)} unique job(s) conflicted with a job this transaction cannot "
            "see; nothing was inserted for them. Retry in a new transaction (READ "
            "COMMITTED sees the job holding the key)."
        )
    return [job for job in results if job is not None]


async def _resolve(
    cur: AsyncCursor[dict[str, Any]],
    jobs: Sequence[Job],
    uniques: Sequence[UniqueJob | None],
    conflicts: list[int],
    results: list[Job | None],
    prefix: str,
) -> list[int]:
    """Fill in the holders of the conflicting keys; return the jobs to insert again:
    their holder's period is over (its key is released here) or it moved on meanwhile."""
    periods: dict[str, int | None] = {}
    for i in conflicts:
        unique = uniques[i]
        assert unique is not None  # only a unique job conflicts
        periods[unique.key] = unique.spec.period
    await cur.execute(
        Q.holders.at(prefix), {"keys": list(periods), "periods": list(periods.values())}
    )
    found = await cur.fetchall()
    expired = [row["id"] for row in found if row.pop("expired")]
    if expired:
        await cur.execute(Q.expire_holders.at(prefix), {"ids": expired})
    holders = {row["meta"]["unique_key"]: row for row in found if row["id"] not in expired}
    retry: list[int] = []
    replacing: list[tuple[int, dict[str, Any]]] = []
    for index in conflicts:
        unique = uniques[index]
        assert unique is not None  # only a unique job conflicts
        holder = holders.get(unique.key)
        if holder is None:
            retry.append(index)
            continue
        if unique.spec.replace:
            replacing.append((index, holder))
        results[index] = _conflict(holder)
    if replacing:
        for row in await _replace(cur, jobs, uniques, replacing, prefix):
            for index, holder in replacing:
                if holder["id"] == row["id"]:
                    results[index] = _conflict(row, replaced=True)
    return retry


async def _replace(
    cur: AsyncCursor[dict[str, Any]],
    jobs: Sequence[Job],
    uniques: Sequence[UniqueJob | None],
    replacing: list[tuple[int, dict[str, Any]]],
    prefix: str,
) -> list[dict[str, Any]]:
    params: dict[str, list[Any]] = {
        k: []
        for k in (
            "ids", "states", "fields", "args", "meta", "max_attempts", "priority", "tags",
            "scheduled_at",
        )
    }  # fmt: skip
    for index, holder in replacing:
        job, unique = jobs[index], uniques[index]
        assert unique is not None and unique.spec.replace is not None
        replace = unique.spec.replace
        params["ids"].append(holder["id"])
        params["states"].append(Jsonb(sorted(replace)))
        params["fields"].append(Jsonb(sorted(set().union(*replace.values()))))
        params["args"].append(Jsonb(job.args))
        params["meta"].append(Jsonb(_own_free(job.meta)))
        params["max_attempts"].append(job.max_attempts)
        params["priority"].append(job.priority)
        params["tags"].append(Jsonb(list(job.tags)))
        params["scheduled_at"].append(utc(job.scheduled_at))
    await cur.execute(Q.replace_holders.at(prefix), params)
    return list(await cur.fetchall())


def _own_free(meta: Mapping[str, Any]) -> dict[str, Any]:
    # A replaced meta never moves the holder's key.
    return {k: v for k, v in meta.items() if k not in ("unique", "unique_key")}


def _conflict(row: Mapping[str, Any], *, replaced: bool = False) -> Job:
    job = Job(**row)
    job.extra = {**(job.extra or {}), "conflict": True, "replaced": replaced}
    return job
