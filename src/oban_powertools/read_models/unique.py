"""What a unique job's page says about its key: the options it was inserted with,
whether it holds the key now (blocking duplicates), until when, and the other jobs of
the same key (the one holding it, the ones before or after it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..db import Conn
from ..db.queries import Statements
from .common import utc

__all__ = ["SameKeyJob", "UniqueFacts", "unique_facts"]

Q = Statements(oban_jobs="same_unique_key")
SHOWN = 10


@dataclass(frozen=True, slots=True)
class SameKeyJob:
    id: int
    state: str
    holds: bool
    inserted_at: datetime | None


@dataclass(frozen=True, slots=True)
class UniqueFacts:
    key: str
    holds: bool  # blocks duplicates now
    fields: list[str]
    keys: list[str] | None
    period: int | None  # seconds; None: for as long as it stays in its states
    states: list[str]
    blocks_until: datetime | None  # when its period ends (None: no end, or not holding)
    others: list[SameKeyJob]  # other jobs of the key, newest first


async def unique_facts(
    conn: Conn, job_id: int, meta: Mapping[str, Any], inserted_at: datetime | None
) -> UniqueFacts | None:
    """The unique facts of a job whose ``meta`` is given (None for a plain job)."""
    spec = meta.get("unique")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("key"), str):
        return None
    key = spec["key"]
    cur = await conn.execute(Q.same_unique_key, {"key": key, "limit": SHOWN + 1})
    others = [
        SameKeyJob(r["id"], r["state"], bool(r["holds"]), utc(r["inserted_at"]))
        for r in await cur.fetchall()
        if r["id"] != job_id
    ][:SHOWN]
    holds = meta.get("unique_key") == key
    period = spec.get("period") if isinstance(spec.get("period"), int) else None
    start = utc(inserted_at)
    return UniqueFacts(
        key=key,
        holds=holds,
        fields=[str(f) for f in spec.get("fields") or []],
        keys=None if spec.get("keys") is None else [str(k) for k in spec["keys"]],
        period=period,
        states=[str(s) for s in spec.get("states") or []],
        blocks_until=start + timedelta(seconds=period) if holds and period and start else None,
        others=others,
    )
