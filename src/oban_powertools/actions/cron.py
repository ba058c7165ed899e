"""Cron actions: pause, resume, run now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..cron import entries
from ..db import Conn
from .base import (
    ApplyContext,
    ConfirmStatement,
    NamedAction,
    Params,
    PauseToggle,
    PreviewFields,
    Snapshot,
    Snapshots,
    StoredPreview,
    register,
    whole_number,
)

MAX_PAUSE_MINUTES = 60 * 24 * 90  # a pause may expire after at most 90 days


class CronAction(NamedAction):
    resource_type = "cron_entry"
    target_pattern = entries.NAME_PATTERN
    target_noun = "cron entry name"

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        return await entries.snapshot_entries(conn, targets, lock=lock)


class SetPaused(PauseToggle, CronAction):
    """Pause and resume, each confirmed in one statement (``confirm_set_paused``): the
    preview locked, the entry changed only at the version the preview saw, the audit
    event written and the preview consumed together."""

    def confirm_statement(
        self, ctx: ApplyContext, targets: Sequence[str], params: Params, expected: Snapshots | None
    ) -> ConfirmStatement | None:
        (name,) = targets
        minutes = params.get("expires_in_minutes")
        expires_at = ctx.now + timedelta(minutes=minutes) if minutes else None
        return ConfirmStatement(
            entries.Q.confirm_set_paused,
            entries.set_paused_params(name, self.pause, ctx.principal, ctx.reason, expires_at),
        )


async def _after(conn: Conn, name: str) -> dict[str, Snapshot]:
    return await entries.snapshot_entries(conn, [name], lock=False)


@register
class PauseCronEntry(SetPaused):
    name = "pause_cron_entry"
    event = "cron.paused"
    label = "Pause cron entry"
    destructive = True
    pause = True

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        self.refuse_unknown(raw, frozenset({"expires_in_minutes"}))
        if raw.get("expires_in_minutes") in (None, ""):
            return {}
        minutes = whole_number(raw, "expires_in_minutes", MAX_PAUSE_MINUTES, " of minutes")
        return {"expires_in_minutes": minutes}

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        minutes = params.get("expires_in_minutes")
        tail = (
            f" or for {minutes} minutes, after which it resumes by itself"
            " (the system resume is audited)"
            if minutes
            else ""
        )
        return f"Future claims stop until resumed{tail}. Jobs already enqueued are not affected."

    async def store_preview(
        self, conn: Conn, targets: Sequence[str], params: Params, fields: PreviewFields
    ) -> StoredPreview | None:
        (name,) = targets
        cur = await conn.execute(
            entries.Q.store_pause_preview,
            {"name": name, **fields.bind(self.name, targets, params, self.effect({}, params))},
        )
        row = await cur.fetchone()
        assert row is not None
        if not row["found"]:
            return StoredPreview(None, [name], [], 0)
        if row["token"] is None:
            why = self.check({"paused": True}, params)
            assert why is not None
            return StoredPreview(None, [], [(name, why)], 1)
        return StoredPreview(row, [], [], 0)


@register
class ResumeCronEntry(SetPaused):
    name = "resume_cron_entry"
    event = "cron.resumed"
    label = "Resume cron entry"
    pause = False

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (entry,) = snapshots.values()
        policy = {
            "none": "minutes missed while paused are skipped",
            "latest": "the latest minute missed while paused runs once",
            "all": f"minutes missed while paused run, at most {entry['max_catch_up']}",
        }[entry["catch_up_policy"]]
        name = entry["catch_up_policy"]
        return f"Claims resume at the next due minute; {policy} (catch-up policy '{name}')."


@register
class RunCronEntry(CronAction):
    name = "run_cron_entry"
    event = "cron.run_now"
    label = "Run now"

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        (entry,) = snapshots.values()
        return (
            f"Enqueues one {entry['worker']} job on queue '{entry['queue']}' now, outside the "
            "schedule. The schedule and pause state do not change."
        )

    async def apply(
        self, conn: Conn, ctx: ApplyContext, snapshots: Snapshots, params: Params
    ) -> dict[str, Snapshot]:
        (name,) = snapshots
        job_id = await entries.run_now(conn, ctx.prefix, name, ctx.principal.id)
        after = await _after(conn, name)
        after[name]["run_now_job_id"] = job_id
        return after
