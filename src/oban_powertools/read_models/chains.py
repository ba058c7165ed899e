"""What the chain pages show: one chain's links in order, where it waits and why
(``/chains/{key}``), the list of chains (``/chains``), and the chain section of a
link's job page. Every value bound for a page passes the display policy here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import Database
from ..db.queries import Statements
from ..display import Display
from ..seams import Resource
from .common import utc

__all__ = [
    "ChainLink",
    "ChainOfJob",
    "ChainSummary",
    "ChainView",
    "chain_of_job",
    "chain_view",
    "chains",
]

Q = Statements(chain_views="chain_snapshot chain_links chain_of_job chains_page")
LINKS_SHOWN = 200
CHAIN_STATES = ("idle", "running", "held")


@dataclass(frozen=True, slots=True)
class ChainLink:
    seq: int
    job_id: int
    job_state: str | None  # None: the job was deleted
    worker: str
    on_failure: str
    outcome: str | None
    finished_at: datetime | None
    is_head: bool


@dataclass(frozen=True, slots=True)
class ChainView:
    key: str  # as the display policy shows it
    raw_key: str  # for links (not shown)
    state: str
    head_seq: int | None
    completed: int
    failed: int
    waits: str  # where the chain waits and why, in words
    links: list[ChainLink]
    more: bool
    resumable: bool


@dataclass(frozen=True, slots=True)
class ChainSummary:
    key: str
    raw_key: str
    state: str
    head_seq: int | None
    links: int
    completed: int
    failed: int
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChainOfJob:
    key: str
    raw_key: str
    seq: int
    on_failure: str
    outcome: str | None
    chain_state: str
    head_seq: int | None
    head_job_id: int | None
    head_job_state: str | None
    says: str  # this link's place in its chain, in words


def shown_key(display: Display, key: str) -> str:
    return display.text("chain_key", key, resource=Resource("chain", key), field="chain")


def waits_text(
    key: str,
    state: str,
    head_seq: int | None,
    head_job: object,
    head_state: object,
    *,
    next_job: object = None,
) -> str:
    if state == "idle":
        return f"Chain {key} is idle: every link finished; the next link inserted runs at once."
    if state == "held":
        after = (
            f" Link after it: job {next_job}, suspended until an operator resumes the chain."
            if next_job is not None
            else " No link waits after it."
        )
        return (
            f"Chain {key} is held at link {head_seq} (job {head_job}, {head_state}): it "
            f"failed and its on_failure is hold.{after}"
        )
    return (
        f"Chain {key} runs link {head_seq} (job {head_job}, {head_state}); the links after it wait."
    )


async def chain_view(db: Database, display: Display, key: str) -> ChainView | None:
    async with db.connection() as conn:
        cur = await conn.execute(Q.chain_snapshot, {"keys": [key]})
        snap = await cur.fetchone()
        if snap is None:
            return None
        cur = await conn.execute(Q.chain_links, {"key": key, "after": 0, "limit": LINKS_SHOWN + 1})
        rows = list(await cur.fetchall())
    shown = shown_key(display, key)
    resource = Resource("chain", key)
    links = [
        ChainLink(
            seq=r["seq"],
            job_id=r["job_id"],
            job_state=r["job_state"],
            worker=display.text("worker", r["worker"] or "?", resource=resource, field="worker"),
            on_failure=r["on_failure"],
            outcome=r["outcome"],
            finished_at=utc(r["finished_at"]),
            is_head=r["seq"] == snap["head_seq"],
        )
        for r in rows[:LINKS_SHOWN]
    ]
    return ChainView(
        key=shown,
        raw_key=key,
        state=snap["state"],
        head_seq=snap["head_seq"],
        completed=snap["links_completed"],
        failed=snap["links_failed"],
        waits=waits_text(
            shown,
            snap["state"],
            snap["head_seq"],
            snap["head_job_id"],
            snap["head_job_state"],
            next_job=snap["next_job_id"],
        ),
        links=links,
        more=len(rows) > LINKS_SHOWN,
        resumable=snap["state"] == "held",
    )


async def chains(
    db: Database, display: Display, state: str | None, limit: int = 100
) -> list[ChainSummary]:
    async with db.connection() as conn:
        cur = await conn.execute(Q.chains_page, {"state": state, "limit": limit})
        rows = list(await cur.fetchall())
    return [
        ChainSummary(
            key=shown_key(display, r["key"]),
            raw_key=r["key"],
            state=r["state"],
            head_seq=r["head_seq"],
            links=r["next_seq"],
            completed=r["links_completed"],
            failed=r["links_failed"],
            updated_at=utc(r["updated_at"]),
        )
        for r in rows
    ]


async def chain_of_job(db: Database, display: Display, job_id: int) -> ChainOfJob | None:
    """The chain link job ``job_id`` is, with its place in the chain in words."""
    async with db.connection() as conn:
        cur = await conn.execute(Q.chain_of_job, {"job_id": job_id})
        row = await cur.fetchone()
    if row is None:
        return None
    key = shown_key(display, row["chain_key"])
    return ChainOfJob(
        key=key,
        raw_key=row["chain_key"],
        seq=row["seq"],
        on_failure=row["on_failure"],
        outcome=row["outcome"],
        chain_state=row["chain_state"],
        head_seq=row["head_seq"],
        head_job_id=row["head_job_id"],
        head_job_state=row["head_job_state"],
        says=link_text(key, row),
    )


def link_text(key: str, row: dict[str, object]) -> str:
    seq, head = row["seq"], row["head_seq"]
    if row["outcome"] is not None:
        held = row["chain_state"] == "held" and head == seq
        tail = " It holds its chain: the next link waits for resume_chain." if held else ""
        return f"Link {seq} of chain {key}: finished ({row['outcome']}).{tail}"
    if head == seq:
        return f"Link {seq} of chain {key}: the chain's head, it may run now."
    if row["chain_state"] == "held":
        return (
            f"Link {seq} of chain {key}: waiting; the chain is held at link {head} (job "
            f"{row['head_job_id']}, {row['head_job_state']}), which failed."
        )
    return (
        f"Link {seq} of chain {key}: waiting for link {head} (job {row['head_job_id']}, "
        f"state {row['head_job_state']}) of chain {key}."
    )
