""" "Why isn't this job running?": one answer for the job page, its forensics bundle, the
JSON API and ``oban-powertools explain``.

For a waiting job (available, scheduled, retryable) it lists every reason it is not
executing, in order, each with its evidence and an ownership-labelled next path; when
nothing holds it back, when it should start. For any other state, one line saying it is
not waiting. See :mod:`.reasons` for the checks and :mod:`.gather` for what they read.
"""

from __future__ import annotations

from dataclasses import replace

from ...config import DEFAULT_LIFELINE_GRACE_SECONDS
from ...db import Database
from ...display import Display
from ..common import ago, utc
from ..lifeline import orphan_sentence
from .gather import HELD_STATES, WAITING_STATES, Situation, gather
from .model import Evidence, Explanation, Reason, render_text
from .reasons import CHECKS, chain_link, expected_start
from .workflow import workflow_step

# What holds a suspended job (oban never fetches one): the queue, nodes and limits do
# not matter to it until it is released. Other kinds of holding add their check here.
HELD_CHECKS = (workflow_step, chain_link)

__all__ = ["Evidence", "Explanation", "Reason", "explain", "explain_situation", "render_text"]


async def explain(
    db: Database,
    display: Display,
    job_id: int,
    *,
    lifeline_grace: float = DEFAULT_LIFELINE_GRACE_SECONDS,
) -> Explanation | None:
    """Why job ``job_id`` is (not) running now; None when there is no such job.
    ``lifeline_grace`` is the host's ``Config.lifeline_grace_seconds``: an executing job
    whose producer has not heartbeated for that long is named orphaned."""
    async with db.connection() as conn:
        situation = await gather(conn, display, job_id)
    return None if situation is None else explain_situation(situation, lifeline_grace)


def explain_situation(
    s: Situation, lifeline_grace: float = DEFAULT_LIFELINE_GRACE_SECONDS
) -> Explanation:
    job = s.job
    answer = Explanation(
        job_id=int(job["id"]),
        state=s.state,
        worker=s.show("worker", job["worker"], "worker"),
        queue=s.show("queue", s.queue, "queue"),
        waiting=s.state in WAITING_STATES or s.state in HELD_STATES,
        summary=_orphaned(s, lifeline_grace) or _not_waiting(s),
        checked_at=s.now,
    )
    if not answer.waiting:
        # A finished job says how it finished; a workflow step cancelled by a dependency
        # also says which one.
        return replace(answer, reasons=workflow_step(s))
    held = s.state in HELD_STATES
    reasons = [reason for check in (HELD_CHECKS if held else CHECKS) for reason in check(s)]
    blocking = sum(1 for r in reasons if r.blocking)
    if blocking:
        summary = (
            f"Job {job['id']} ({s.state}) is not running: "
            + ("1 reason holds" if blocking == 1 else f"{blocking} reasons hold")
            + " it back."
        )
        return replace(answer, summary=summary, reasons=reasons)
    if held:
        summary = (
            f"Job {job['id']} is suspended (oban does not fetch it) and is neither a workflow "
            "step nor a waiting chain link: what releases it is outside what the explainer "
            "knows."
        )
        return replace(answer, summary=summary, reasons=reasons)
    expected = expected_start(s)
    summary = f"Nothing holds job {job['id']} back: it should start {expected}."
    return replace(answer, summary=summary, reasons=reasons, expected=expected)


def _orphaned(s: Situation, grace: float) -> str | None:
    """An executing job whose producer stopped heartbeating, as the lifeline sees it."""
    beat = s.heartbeat
    if s.state != "executing" or beat is None:
        return None
    sentence = orphan_sentence(
        node=s.show("node", beat["node"] or "unknown node", "attempted_by"),
        producer=None
        if beat["producer"] is None
        else s.show("producer", beat["producer"], "attempted_by"),
        last_heartbeat=utc(beat["last_heartbeat"]),
        grace=grace,
        now=s.now,
    )
    if sentence is None:
        return None
    return f"Job {s.job['id']} is orphaned: {sentence}. It is not waiting to run."


def _not_waiting(s: Situation) -> str:
    job = s.job
    column = {
        "executing": "attempted_at",
        "completed": "completed_at",
        "cancelled": "cancelled_at",
        "discarded": "discarded_at",
    }.get(s.state)
    when = f" {ago(utc(job[column]), s.now)}" if column else ""
    what = {
        "executing": f"is executing (attempt {job['attempt']} of {job['max_attempts']}, "
        f"started{when})",
        "completed": f"completed{when}",
        "cancelled": f"was cancelled{when}",
        "discarded": f"was discarded{when}",
    }.get(s.state, f"is {s.state}")
    return f"Job {job['id']} {what}: it is not waiting to run."
