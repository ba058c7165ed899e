"""Job actions: retry, cancel, discard, one job or an explicit previewed set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..db import Conn, oban_jobs
from ..db.queries import Statements
from .base import (
    Action,
    Applied,
    ApplyContext,
    Params,
    PreviewFields,
    RowSnapshots,
    Snapshot,
    Snapshots,
    StoredPreview,
    register,
)
from .errors import InvalidTargets

MAX_BULK = 100_000

# Where the after-state is in a row of oban_jobs.change_checked.
AFTER_COLUMNS = {
    "id": 0,
    "state": 3,
    "queue": 4,
    "worker": 5,
    "attempt": 6,
    "max_attempts": 7,
}


Q = Statements(previews="store_job_set_preview")


class JobAction(Action):
    resource_type = "job"
    max_targets = MAX_BULK
    applies_to: frozenset[str] = frozenset()
    verb = ""
    change: oban_jobs.Change

    def parse_target(self, raw: str) -> str:
        text = raw.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) <= 0:
            raise InvalidTargets(f"{raw[:40]!r} is not a job id")
        return str(int(text))

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        ids = [int(t) for t in targets]
        if len(ids) > 1 and not lock:
            # A bulk preview: drift keys only (what execute checks, and the state the
            # effect and the audit summary count).
            keys = await oban_jobs.drift_keys(conn, ids)
            return {str(i): {"state": s, "attempt": a} for i, (s, a) in keys.items()}
        rows = await oban_jobs.snapshot_jobs(conn, ids, lock=lock)
        return {str(job_id): row for job_id, row in rows.items()}

    async def store_preview(
        self, conn: Conn, targets: Sequence[str], params: Params, fields: PreviewFields
    ) -> StoredPreview | None:
        if len(targets) == 1:
            return None  # one job: the full snapshot, through the pipeline's own path
        cur = await conn.execute(
            Q.store_job_set_preview,
            {
                "ids": [int(t) for t in targets],
                "applies_to": sorted(self.applies_to),
                **fields.bind(
                    self.name, targets, params, self.describe(f"exactly these {len(targets)} jobs")
                ),
            },
        )
        row = await cur.fetchone()
        assert row is not None
        problems = [
            (job_id, self.check({"state": state}, params) or state)
            for job_id, state in row["problem_examples"] or []
        ]
        return StoredPreview(
            row={**row, "before": {}} if row["token"] is not None else None,
            missing=list(row["missing_ids"] or []),
            problems=problems,
            problem_count=int(row["problems"]),
        )

    async def apply_checked(
        self,
        conn: Conn,
        ctx: ApplyContext,
        targets: Sequence[str],
        params: Params,
        expected: Snapshots | None,
    ) -> Applied:
        """One UPDATE that checks and changes together (no SELECT ... FOR UPDATE first):
        a job whose state or attempt differs from the preview is not changed, and its
        absence from the result names it as drifted."""
        assert ctx.preview_token is not None
        rows = await oban_jobs.change_checked(
            conn, ctx.prefix, self.change, ctx.preview_token, size=len(targets)
        )
        if len(rows) < len(targets):
            changed = {str(r[0]) for r in rows}
            return Applied({}, {}, [t for t in targets if t not in changed])
        if len(targets) > 1:
            # What a bulk preview holds of each job (state, attempt; equal on what the
            # statement checked), and the after-state, read from the rows when asked for.
            before = RowSnapshots(rows, {"state": 1, "attempt": 2})
            after = RowSnapshots(rows, AFTER_COLUMNS)
            return Applied(before, after, [])
        # One job: the preview's full snapshot is the before-state.
        (row,) = rows
        key = str(row[0])
        was = {"state": row[1], "attempt": row[2]}
        expected_row = expected.get(key) if expected is not None else None
        return Applied(
            {key: dict(expected_row) if expected_row is not None else was},
            {key: {name: row[i] for name, i in AFTER_COLUMNS.items()}},
            [],
        )

    def drift_key(self, snapshot: Snapshot) -> Any:
        return [snapshot["state"], snapshot["attempt"]]

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        if snapshot["state"] in self.applies_to:
            return None
        return f"a {snapshot['state']} job cannot be {self.verb}"

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        count = len(snapshots)
        what = f"job {next(iter(snapshots))}" if count == 1 else f"exactly these {count} jobs"
        return self.describe(what)

    def describe(self, what: str) -> str:
        raise NotImplementedError


@register
class RetryJob(JobAction):
    name = "retry_job"
    event = "job.retried"
    label = "Retry"
    verb = "retried"
    change = "retry"
    applies_to = frozenset({"completed", "retryable", "discarded", "cancelled", "scheduled"})

    def describe(self, what: str) -> str:
        return f"Makes {what} available to run now; exhausted jobs get one more attempt."


@register
class CancelJob(JobAction):
    name = "cancel_job"
    event = "job.cancelled"
    label = "Cancel"
    verb = "cancelled"
    change = "cancel"
    destructive = True
    applies_to = frozenset({"available", "scheduled", "retryable", "suspended", "executing"})

    def describe(self, what: str) -> str:
        return (
            f"Cancels {what}: waiting jobs will not run; a running job is asked to stop "
            "(its worker must check for cancellation)."
        )


@register
class DiscardJob(JobAction):
    name = "discard_job"
    event = "job.discarded"
    label = "Discard"
    verb = "discarded"
    change = "discard"
    destructive = True
    applies_to = frozenset({"available", "scheduled", "retryable", "suspended"})

    def describe(self, what: str) -> str:
        return f"Discards {what}: no further attempts; the job stays for forensics."
