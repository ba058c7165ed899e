"""One job in full, as the job page and its evidence bundle show it: args, meta, every
error, the node that ran it and whether that node's producer is still alive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from ..db import Database
from ..db.queries import Statements
from ..display import Display, error_line, job_redactions, mask_known, merge_secrets
from ..seams import Resource
from ..workers.deadline import stored_deadline
from ..workers.recorded import decode_recorded
from .batches import BatchOfJob, batch_of_job
from .chains import ChainOfJob, chain_of_job
from .common import PRODUCER_LIVE_SECONDS, utc
from .jobs import JobIdentity, applicable_actions, shown_identity
from .unique import UniqueFacts, unique_facts

Q = Statements(oban_jobs="job_detail")


@dataclass(frozen=True, slots=True)
class JobError:
    attempt: int | None
    at: datetime | None
    line: str
    text: str


@dataclass(frozen=True, slots=True)
class JobDetail(JobIdentity):
    args_json: str
    meta_json: str
    errors: list[JobError]
    nodes: list[str]
    inserted_at: datetime | None
    scheduled_at: datetime | None
    attempted_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    discarded_at: datetime | None
    producer_live: bool
    cron_name: str | None
    actions: list[str]
    # A typed worker's deadline (meta.deadline_at) and recorded return value (shown
    # decoded, through the display policy); None when the job has none.
    deadline_at: datetime | None = None
    result_json: str | None = None
    # A workflow step's workflow (its id, for the link) and step name (shown).
    workflow_id: str | None = None
    workflow_step: str | None = None
    # A unique job's key, whether it holds it, and the other jobs of the key.
    unique: UniqueFacts | None = None
    # The producer that runs (ran) it (attempted_by[2]) and its last heartbeat (None: its
    # row is gone), for the lifeline's word on an executing job.
    producer: str | None = None
    last_heartbeat: datetime | None = None
    # A chain link's place in its chain; a batch job's (or callback's) batch.
    chain: ChainOfJob | None = None
    batch: BatchOfJob | None = None


async def job_detail(db: Database, display: Display, job_id: int) -> JobDetail | None:
    async with db.connection() as conn:
        cur = await conn.execute(Q.job_detail, {"id": job_id, "live": PRODUCER_LIVE_SECONDS})
        row = await cur.fetchone()
        if row is None:
            return None
        facts = await unique_facts(conn, row["id"], row["meta"] or {}, row["inserted_at"])
    detail = detail_from_row(display, row)
    if facts is not None:
        detail = replace(detail, unique=facts)
    meta = row["meta"] or {}
    # The meta marks are set at insert and never change: a plain job costs no query.
    if "chain" in meta:
        detail = replace(detail, chain=await chain_of_job(db, display, row["id"]))
    if "batch_id" in meta or "batch_callback_of" in meta:
        detail = replace(detail, batch=await batch_of_job(db, display, row["id"]))
    return detail


def detail_from_row(display: Display, row: Mapping[str, Any]) -> JobDetail:
    resource = Resource("job", str(row["id"]))
    args_json, args_secrets = display.json(
        "args", row["args"], resource=resource, redact=job_redactions(row["meta"])
    )
    meta_json, meta_secrets = display.json("meta", row["meta"], resource=resource)
    known = merge_secrets(args_secrets, meta_secrets)
    errors: list[JobError] = []
    for entry in row["errors"] or []:
        if not isinstance(entry, Mapping):
            entry = {"error": entry}
        text = display.free_text(
            "error", entry.get("error"), resource=resource, field="error", known=known
        )
        errors.append(
            JobError(
                attempt=entry.get("attempt") if isinstance(entry.get("attempt"), int) else None,
                at=_parse_time(entry.get("at")),
                line=error_line(text),
                text=text,
            )
        )
    meta = row["meta"] or {}
    cron_name = meta.get("cron_name") if isinstance(meta.get("cron_name"), str) else None
    step = _workflow_step(display, meta)
    return JobDetail(
        id=row["id"],
        state=row["state"],
        **shown_identity(display, row, resource),
        args_json=args_json,
        meta_json=meta_json,
        errors=errors,
        nodes=[
            display.text("node", n, resource=resource, field="attempted_by")
            for n in (row["attempted_by"] or [])[:1]
        ],
        inserted_at=utc(row["inserted_at"]),
        scheduled_at=utc(row["scheduled_at"]),
        attempted_at=utc(row["attempted_at"]),
        completed_at=utc(row["completed_at"]),
        cancelled_at=utc(row["cancelled_at"]),
        discarded_at=utc(row["discarded_at"]),
        producer_live=bool(row["producer_live"]),
        cron_name=display.optional("cron_entry", cron_name, resource=resource, field="cron_name"),
        actions=applicable_actions(row["state"]),
        deadline_at=stored_deadline(meta),
        result_json=_result_json(display, meta, resource, known),
        producer=display.text(
            "producer", row["attempted_by"][1], resource=resource, field="attempted_by"
        )
        if len(row["attempted_by"] or []) >= 2
        else None,
        last_heartbeat=utc(row.get("last_heartbeat")),
        workflow_id=step[0] if step else None,
        workflow_step=step[1] if step else None,
    )


def _workflow_step(display: Display, meta: Mapping[str, Any]) -> tuple[str, str] | None:
    """The workflow a step's job belongs to (meta.workflow_id, a UUID) and its step."""
    raw, step = meta.get("workflow_id"), meta.get("workflow_step")
    if not isinstance(raw, str) or not isinstance(step, str):
        return None
    try:
        workflow_id = str(UUID(raw))
    except ValueError:
        return None
    shown = display.text(
        "workflow_step", step, resource=Resource("workflow", workflow_id), field="step"
    )
    return workflow_id, shown


def _result_json(
    display: Display, meta: Mapping[str, Any], resource: Resource, known: Mapping[str, str]
) -> str | None:
    """The recorded return value (oban's Record: meta.recorded, meta.return), decoded."""
    encoded = meta.get("return")
    if meta.get("recorded") is not True or not isinstance(encoded, str):
        return None
    try:
        value = decode_recorded(encoded)
    except ValueError:
        return "(a recorded value that cannot be decoded)"
    shown, _ = display.json("result", value, resource=resource, field="result")
    # A value redacted in the args is masked here too, should perform have returned it.
    return mask_known(shown, known)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        return None
