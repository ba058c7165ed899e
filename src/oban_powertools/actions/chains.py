"""Chain actions: ``resume_chain`` moves a held chain past its failed link.

A chain is held when a link failed (discarded, or cancelled) and its ``on_failure`` is
``hold``: the next links stay suspended. Resuming releases the next unfinished link
(the exact job the preview names) and the chain runs on from there; the failed link's
job stays as it finished, for forensics (retrying it afterwards runs it outside the
chain's order). A resume of a chain with no link after the failed one makes it idle,
so the next insert runs at once. The preview names the failed link and the job it
releases; a confirm after the chain moved (its head, state or next link changed) is
refused as drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..chains.options import MAX_KEY
from ..db import Conn
from ..db.queries import Statements
from .base import Action, ApplyContext, Params, Snapshot, Snapshots, register
from .errors import InvalidTargets

Q = Statements(chain_views="lock_chain chain_snapshot resume_chain")


def _link(seq: Any, job_id: Any, state: Any) -> str:
    return f"link {seq} (job {job_id}, {state})"


@register
class ResumeChain(Action):
    name = "resume_chain"
    event = "chain.resumed"
    resource_type = "chain"
    label = "Resume chain"
    destructive = True

    def parse_target(self, raw: str) -> str:
        if not raw.strip() or len(raw) > MAX_KEY or not raw.isprintable():
            raise InvalidTargets(f"{raw[:60]!r} is not a chain key")
        return raw

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        if lock:
            await conn.execute(Q.lock_chain, {"keys": list(targets)})
        cur = await conn.execute(Q.chain_snapshot, {"keys": list(targets)})
        return {row["key"]: dict(row) for row in await cur.fetchall()}

    def drift_key(self, snapshot: Snapshot) -> Any:
        return [
            snapshot["state"],
            snapshot["head_seq"],
            snapshot["next_job_id"],
            snapshot["next_job_state"],
        ]

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        if snapshot["state"] != "held":
            return f"the chain is {snapshot['state']}, not held: nothing waits for a resume"
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        ((key, snap),) = snapshots.items()
        failed = _link(snap["head_seq"], snap["head_job_id"], snap["head_job_state"])
        if snap["next_job_id"] is None:
            return (
                f"Moves chain {key} past its failed {failed}: no link waits after it, so "
                "the chain becomes idle and its next insert runs at once. The failed job "
                "stays as it is."
            )
        nxt = _link(snap["next_seq"], snap["next_job_id"], snap["next_job_state"])
        return (
            f"Moves chain {key} past its failed {failed} and releases {nxt} "
            f"({snap['next_worker']} on queue {snap['next_queue']}) to run now; the links "
            "after it run in order as before. The failed job stays as it is."
        )

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        after: dict[str, Snapshot] = {}
        for key in snapshots:
            cur = await conn.execute(
                Q.resume_chain, {"key": key, "channel": f"{ctx.prefix}.oban_insert"}
            )
            row = await cur.fetchone()
            assert row is not None  # the chain is locked and was checked held
            after[key] = {
                "state": row["state"],
                "head_seq": row["head_seq"],
                "released_job_id": row["released_job_id"],
                "released_state": row["released_state"],
            }
        return after
