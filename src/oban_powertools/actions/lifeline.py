"""Lifeline repairs: ``rescue_jobs`` and ``discard_stuck_jobs``, on a queue or on given jobs.

``rescue_jobs`` does by hand what the lifeline does by itself (``runtime/lifeline.py``):
an *orphaned* executing job (its producer has not heartbeated within
``Config.lifeline_grace_seconds``) goes back to available with its attempt kept, or is
discarded when it has no attempt left. ``discard_stuck_jobs`` discards executing jobs that
are *stuck* (running longer than ``Config.stuck_after_seconds`` on a live producer) or
orphaned; a run still going on a live node is told to stop (oban's ``pkill`` signal, as a
cancel sends) and its late ack is dropped by oban's ``attempted_at`` guard.

Either takes a ``queue`` and a ``kind`` (``orphaned``, or ``stuck`` for the discard) and
no job ids: the preview finds the exact set in the database (``queue_repair_set``: that
queue's orphaned or stuck jobs, oldest first, at most ``MAX_JOBS``, and how many there are
in all), which the pipeline then authorizes, snapshots and stores like given targets. This
is what the Lifeline section posts: a form names a queue, not thousands of jobs. At
confirm the jobs are locked and judged again; one that changed since the preview
(finished, rescued by the lifeline, fetched again, its producer back) is left as it is and
named in the audit event (``skipped``), and the others change. Only when none is left
does the confirm drift and change nothing.

Or it takes job ids (a job page, a script), with an optional ``queue`` that every job
must be in and an optional ``kind`` every job must be of; then any job that changed is
drift and nothing of the set changes. Either way the preview states each job's evidence
(node, producer, last heartbeat, how long it has executed; the first ``LISTED`` in the
effect, all in the stored preview), and both thresholds are stored with it, so preview
and confirm judge by the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString

from ..db import Conn, oban_jobs
from ..db.queries import Statements
from ..queues.state import QUEUE_PATTERN
from .base import (
    Action,
    ApplyContext,
    Params,
    PreviewFields,
    Snapshot,
    Snapshots,
    StoredPreview,
    register,
)
from .errors import InvalidParams, InvalidTargets, NotApplicable

MAX_JOBS = 10_000
# The effect text names this many jobs with their evidence; the preview keeps all.
LISTED = 20
# What each repair's kind may be, its default first.
KINDS = {"rescue_jobs": ("orphaned",), "discard_stuck_jobs": ("stuck", "orphaned")}

Q = Statements(
    lifeline=(
        "job_evidence job_evidence_for_update queue_known queue_repair_set operator_rescue"
        " operator_discard"
    ),
)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


async def job_evidence(conn: Conn, ids: Sequence[int], *, lock: bool) -> dict[str, Snapshot]:
    """Each existing job's lifeline evidence, JSON-ready (it is stored on the preview)."""
    cur = await conn.execute(
        Q.job_evidence_for_update if lock else Q.job_evidence, {"ids": list(ids)}
    )
    found: dict[str, Snapshot] = {}
    for r in await cur.fetchall():
        age = r["heartbeat_age"]
        found[str(r["id"])] = {
            "state": r["state"],
            "queue": r["queue"],
            "worker": r["worker"],
            "attempt": r["attempt"],
            "max_attempts": r["max_attempts"],
            "attempted_at": _iso(r["attempted_at"]),
            "node": r["node"],
            "producer": r["producer"],
            "last_heartbeat_at": _iso(r["last_heartbeat"]),
            "heartbeat_age_seconds": None if age is None else round(float(age), 1),
            "running_seconds": r["running_seconds"],
        }
    return found


def orphaned(snapshot: Snapshot, grace: float) -> bool:
    """Executing, and its producer has no heartbeat within the grace (or no row)."""
    age = snapshot.get("heartbeat_age_seconds")
    return snapshot["state"] == "executing" and (age is None or age >= grace)


def stuck(snapshot: Snapshot, grace: float, stuck_after: int) -> bool:
    """Executing on a live producer for longer than ``stuck_after`` seconds."""
    running = snapshot.get("running_seconds")
    return (
        snapshot["state"] == "executing"
        and not orphaned(snapshot, grace)
        and running is not None
        and running > stuck_after
    )


def evidence_line(job_id: str, snap: Snapshot, grace: float) -> str:
    """One job's evidence in words, as the preview names it."""
    node = snap.get("node") or "an unknown node"
    producer = snap.get("producer") or "unknown"
    running = snap.get("running_seconds")
    ran = f"executing for {_span(running)}" if running is not None else "executing"
    beat = snap.get("last_heartbeat_at")
    age = snap.get("heartbeat_age_seconds")
    if beat is None:
        heartbeat = "its producer row is gone"
    elif age is not None and age >= grace:
        heartbeat = f"last heartbeat {beat} ({_span(age)} ago, grace {grace:g} s)"
    else:
        heartbeat = f"producer alive (heartbeat {_span(age or 0)} ago)"
    return f"job {job_id} on node {node}, producer {producer}: {ran}; {heartbeat}"


def _span(seconds: float | int) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


class LifelineJobAction(Action):
    """What both repairs share: job targets or a queue's set, the evidence snapshot,
    judging at confirm."""

    resource_type = "job"
    max_targets = MAX_JOBS
    destructive = True
    selects_targets = True

    def parse_target(self, raw: str) -> str:
        text = raw.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) <= 0:
            raise InvalidTargets(f"{raw[:40]!r} is not a job id")
        return str(int(text))

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``queue``: the queue whose jobs to repair (without job ids), or that every given
        job must be in. ``kind``: which of its jobs (see :data:`KINDS`)."""
        self.refuse_unknown(raw, frozenset({"queue", "kind"}))
        parsed: dict[str, Any] = {}
        queue = raw.get("queue")
        if queue is not None and not (isinstance(queue, str) and not queue.strip()):
            if not isinstance(queue, str) or not QUEUE_PATTERN.match(queue.strip()):
                raise InvalidParams(f"{str(queue)[:60]!r} is not a queue name")
            parsed["queue"] = queue.strip()
        kind = raw.get("kind")
        if kind is not None and not (isinstance(kind, str) and not kind.strip()):
            kinds = KINDS[self.name]
            if not isinstance(kind, str) or kind.strip() not in kinds:
                raise InvalidParams(
                    f"{self.name} takes kind {' or '.join(kinds)}, not {str(kind)[:40]!r}"
                )
            parsed["kind"] = kind.strip()
        return parsed

    def with_settings(self, parsed: dict[str, Any], config: Any) -> dict[str, Any]:
        return {
            **parsed,
            "grace_seconds": float(config.lifeline_grace_seconds),
            "stuck_after_seconds": int(config.stuck_after_seconds),
        }

    async def _check_queue(self, conn: Conn, queue: str) -> None:
        cur = await conn.execute(Q.queue_known, {"queue": queue})
        row = await cur.fetchone()
        if row is None or not row["known"]:
            raise InvalidParams(
                f"unknown queue {queue!r}: no node runs it and none of its jobs executes"
            )

    async def select_targets(self, conn: Conn, params: Params) -> tuple[list[str], dict[str, Any]]:
        """The queue's orphaned (or stuck) jobs, oldest first, at most ``MAX_JOBS``; the
        stored parameters say the kind and how many the queue had (``found``)."""
        queue = params.get("queue")
        if queue is None:
            raise InvalidParams(f"{self.name} takes a queue (and kind), or job ids")
        await self._check_queue(conn, queue)
        kind = params.get("kind") or KINDS[self.name][0]
        cur = await conn.execute(
            Q.queue_repair_set,
            {
                "queue": queue,
                "kind": kind,
                "grace": params["grace_seconds"],
                "stuck_after": params["stuck_after_seconds"],
                "limit": MAX_JOBS,
            },
        )
        rows = await cur.fetchall()
        if not rows:
            raise NotApplicable(f"no {kind} job in queue {queue!r} now")
        found = int(rows[0]["total"])
        return [str(r["id"]) for r in rows], {**params, "kind": kind, "found": found}

    async def store_preview(
        self, conn: Conn, targets: Sequence[str], params: Params, fields: PreviewFields
    ) -> StoredPreview | None:
        # Not a store of its own: given jobs' queue is checked here, where a connection is
        # at hand (a queue's set checked it when it was selected), then the pipeline
        # snapshots, checks and stores as for any action.
        queue = params.get("queue")
        if queue is not None and "found" not in params:
            await self._check_queue(conn, queue)
        return None

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        return await job_evidence(conn, [int(t) for t in targets], lock=lock)

    def drift_key(self, snapshot: Snapshot) -> Any:
        return [snapshot["state"], snapshot["attempt"], snapshot["attempted_at"]]

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        queue = params.get("queue")
        if queue is not None and snapshot["queue"] != queue:
            return f"the job is in queue {snapshot['queue']!r}, not {queue!r}"
        if snapshot["state"] != "executing":
            return f"a {snapshot['state']} job is not executing"
        return self.judge(snapshot, params)

    def judge(self, snapshot: Snapshot, params: Params) -> str | None:
        raise NotImplementedError

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        grace = float(params["grace_seconds"])
        lines = [evidence_line(t, snapshots[t], grace) for t in sorted(snapshots, key=int)]
        shown = "; ".join(lines[:LISTED])
        more = f"; and {len(lines) - LISTED} more" if len(lines) > LISTED else ""
        then = (
            " A job that changes before the confirm (finished, rescued by the lifeline, its "
            "producer back) is left as it is and named in the audit event."
            if "found" in params
            else ""
        )
        return f"{self.summary(snapshots, params)}{then} Evidence: {shown}{more}."

    def what(self, snapshots: Snapshots, params: Params) -> str:
        """The set in words: one job, exactly these jobs, or a queue's (part of its) set."""
        count = len(snapshots)
        if "found" not in params:
            return f"job {next(iter(snapshots))}" if count == 1 else f"exactly these {count} jobs"
        kind, queue, found = params["kind"], params["queue"], int(params["found"])
        noun = "job" if count == 1 else "jobs"
        if found > count:
            return (
                f"the oldest {count:,} of the {found:,} {kind} jobs of queue {queue} (at most "
                f"{MAX_JOBS:,} per preview: preview again for the rest)"
            )
        return f"the {count:,} {kind} {noun} of queue {queue}, exactly these"

    def summary(self, snapshots: Snapshots, params: Params) -> str:
        raise NotImplementedError

    def drifted(self, snapshot: Snapshot, expected: Snapshot, params: Params) -> bool:
        """Drift unless the job is as previewed *and* still orphaned (or stuck): a producer
        that came back makes its jobs drift too."""
        return (
            super().drifted(snapshot, expected, params) or self.check(snapshot, params) is not None
        )

    def applies_the_rest(self, params: Params) -> bool:
        """A queue's set (``found``: the preview selected it) changes the jobs still as
        previewed and names the others: the lifeline itself races an operator for orphans,
        and a set of thousands would otherwise rarely confirm. Given jobs change all or
        none."""
        return "found" in params


def _by(ctx: ApplyContext) -> str:
    return f"{ctx.principal.label} ({ctx.principal.id})"


async def _operate(
    conn: Conn, statement: LiteralString, ctx: ApplyContext, snapshots: Snapshots
) -> list[dict[str, Any]]:
    """Run an operator statement (rescue or discard) on the snapshotted jobs, in the name of
    the acting principal; the changed jobs' rows."""
    cur = await conn.execute(statement, {"ids": [int(t) for t in snapshots], "by": _by(ctx)})
    return list(await cur.fetchall())


def _after(rows: Sequence[Mapping[str, Any]]) -> dict[str, Snapshot]:
    return {
        str(r["id"]): {
            "state": r["state"],
            "queue": r["queue"],
            "worker": r["worker"],
            "attempt": r["attempt"],
            "max_attempts": r["max_attempts"],
        }
        for r in rows
    }


@register
class RescueJobs(LifelineJobAction):
    name = "rescue_jobs"
    event = "job.rescued"
    label = "Rescue orphaned jobs"

    def judge(self, snapshot: Snapshot, params: Params) -> str | None:
        grace = float(params["grace_seconds"])
        if orphaned(snapshot, grace):
            return None
        return (
            f"it is not orphaned: its producer on node {snapshot.get('node')} heartbeated "
            f"{_span(snapshot.get('heartbeat_age_seconds') or 0)} ago (grace {grace:g} s)"
        )

    def summary(self, snapshots: Snapshots, params: Params) -> str:
        spent = sum(1 for s in snapshots.values() if s["attempt"] >= s["max_attempts"])
        what = self.what(snapshots, params)
        tail = (
            f" {spent} of them {'has' if spent == 1 else 'have'} no attempt left and "
            f"{'is' if spent == 1 else 'are'} discarded instead."
            if spent
            else ""
        )
        why = "" if "found" in params else ", orphaned (their producer stopped heartbeating)"
        return (
            f"Rescues {what}{why}: back to available with the attempt kept, an error entry "
            f"saying why.{tail}"
        )

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        rows = await _operate(conn, Q.operator_rescue, ctx, snapshots)
        queues = sorted({r["queue"] for r in rows if r["state"] == "available"})
        for queue in queues:
            # Wake the queue's producers, as an insert would.
            await oban_jobs.notify(conn, ctx.prefix, "insert", {"queue": queue})
        return _after(rows)


@register
class DiscardStuckJobs(LifelineJobAction):
    name = "discard_stuck_jobs"
    event = "job.discarded"
    label = "Discard stuck jobs"

    def judge(self, snapshot: Snapshot, params: Params) -> str | None:
        grace = float(params["grace_seconds"])
        stuck_after = int(params["stuck_after_seconds"])
        kind = params.get("kind")
        if orphaned(snapshot, grace):
            if kind == "stuck":
                return "it is orphaned, not stuck: its producer stopped heartbeating"
            return None
        if stuck(snapshot, grace, stuck_after):
            if kind == "orphaned":
                return "it is not orphaned: it is stuck on a live node"
            return None
        return (
            f"it is not stuck: executing for {_span(snapshot.get('running_seconds') or 0)} on "
            f"a live node (stuck after {_span(stuck_after)})"
        )

    def summary(self, snapshots: Snapshots, params: Params) -> str:
        what = self.what(snapshots, params)
        why = "" if "found" in params else ", stuck or orphaned"
        return (
            f"Discards {what}{why}: no further attempts, kept for forensics; "
            "a run still going on a live node is told to stop (its worker must check for "
            "cancellation) and its result is dropped."
        )

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        rows = await _operate(conn, Q.operator_discard, ctx, snapshots)
        for row in rows:
            await oban_jobs.notify(
                conn, ctx.prefix, "signal", {"action": "pkill", "job_id": row["id"]}
            )
        return _after(rows)
