"""Confirming a preview: the change, its audit event and the preview's consumption, together.

Actions that can express all of it as one statement (:class:`~.base.ConfirmStatement`:
cron pause and resume) do, which spares the BEGIN and COMMIT round trips; the others use a
transaction. Any failure leaves nothing, except the terminal outcomes ``expired`` and
``drifted``, which are recorded on the preview (and nothing else changes) so a retry with
the same token says why it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..audit.writer import event_params, write_event
from ..db.queries import Statements
from ..errors import InvalidArgument
from .base import Action, Applied, ApplyContext, ConfirmStatement, Snapshot
from .errors import PreviewDrifted, PreviewExpired, PreviewNotFound
from .preview import (
    ActionResult,
    Preview,
    audit_snapshot,
    event_detail,
    raise_for_status,
    skipped_detail,
)

if TYPE_CHECKING:
    from ..powertools import Powertools

Q = Statements(previews="lock_preview get_preview resolve_preview")


class _Drifted(Exception):
    """Internal: leaves the execute transaction (rolling it back) when targets drifted."""

    def __init__(self, targets: list[str], reason: str | None) -> None:
        super().__init__(targets)
        self.targets = targets
        self.reason = reason


def _confirmed_event(action: Action, preview: Preview, ctx: ApplyContext) -> dict[str, Any]:
    """Who did what to which resource, where and why: the audit event of a confirm, the
    same whichever way it is confirmed."""
    return {
        "action": action.event,
        "command": action.name,
        "resource_type": action.resource_type,
        "resource_id": preview.resource_id,
        "principal": ctx.principal,
        "surface": ctx.surface,
        "reason": ctx.reason,
        "detail": event_detail(preview),
    }


class Confirm:
    """The two ways a preview is confirmed, for one Powertools instance."""

    def __init__(self, powertools: Powertools) -> None:
        self._pt = powertools

    async def in_one_statement(
        self, action: Action, preview: Preview, ctx: ApplyContext, statement: ConfirmStatement
    ) -> ActionResult:
        """Lock the preview, change, audit and consume in one statement: no BEGIN or
        COMMIT round trips (PostgreSQL runs a single statement as its own transaction)."""
        reserved = {"token", "actor_id"}
        clash = (reserved | {k for k in statement.params if k.startswith("audit_")}) & set(
            statement.params
        )
        if clash:
            raise InvalidArgument(
                f"{action.name}: parameter names reserved by the pipeline: {clash}"
            )
        params = {
            **statement.params,
            **event_params(**_confirmed_event(action, preview, ctx)),
            "token": preview.token,
            "actor_id": ctx.principal.id,
        }
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(statement.sql, params)
            row = await cur.fetchone()
        assert row is not None
        if row["guarded"] == 0:
            # Not ready any more since it was read: another confirm won, or it expired.
            current = await self._current(preview.token)
            if current is None:
                raise PreviewNotFound()
            raise_for_status(current)
            await self.resolve_alone(preview.token, "expired", ctx.reason)
            raise PreviewExpired()
        if row["event_id"] is None:
            # Locked and ready, but a target is no longer as previewed: nothing changed.
            await self.resolve_alone(preview.token, "drifted", ctx.reason)
            raise PreviewDrifted(preview.targets)
        event_id = int(row["event_id"])
        (target,) = preview.targets
        consumed = replace(preview, status="consumed", reason=ctx.reason, audit_event_id=event_id)
        return ActionResult(consumed, event_id, {target: dict(row["after"])})

    async def in_transaction(
        self,
        action: Action,
        preview: Preview,
        ctx: ApplyContext,
        expected: Mapping[str, Snapshot] | None,
    ) -> ActionResult:
        """Lock the preview, check it again, apply, audit and consume in one transaction."""
        token = preview.token
        expired = False
        try:
            async with self._pt.db.transaction() as conn:
                cur = await conn.execute(Q.lock_preview, {"token": token})
                row = await cur.fetchone()
                if row is None:
                    raise PreviewNotFound()
                # Another confirm may have won since the read.
                raise_for_status(
                    replace(preview, status=row["status"], audit_event_id=row["audit_event_id"])
                )
                if row["is_expired"]:
                    expired = True
                else:
                    applied = await action.apply_checked(
                        conn, ctx, preview.targets, preview.params, expected
                    )
                    if applied.drifted:
                        raise _Drifted(applied.drifted, ctx.reason)
                    return await self._consume(conn, action, preview, ctx, applied)
        except _Drifted as drift:
            # The transaction rolled back: nothing of the set was applied. Record why.
            await self.resolve_alone(token, "drifted", drift.reason)
            raise PreviewDrifted(drift.targets) from None
        assert expired
        await self.resolve_alone(token, "expired", ctx.reason)
        raise PreviewExpired()

    async def _consume(
        self, conn: Any, action: Action, preview: Preview, ctx: ApplyContext, applied: Applied
    ) -> ActionResult:
        """Write the audit event and consume the preview, in the caller's transaction."""
        event = _confirmed_event(action, preview, ctx)
        targets = preview.targets
        if applied.skipped:
            # Changed since the preview and left as they are: the event names what changed
            # and what did not.
            left = set(applied.skipped)
            targets = [t for t in targets if t not in left]
            event["detail"] = skipped_detail(event["detail"], targets, applied.skipped)
        single = len(targets) == 1
        event_id = await write_event(
            conn,
            **event,
            outcome="succeeded",
            preview_token=preview.token,
            before=applied.before.get(targets[0])
            if single
            else audit_snapshot(applied.before, targets),
            after=applied.after.get(targets[0])
            if single
            else audit_snapshot(applied.after, targets),
            consume_preview=True,
        )
        consumed = replace(
            preview,
            before=preview.before or applied.before,
            status="consumed",
            reason=ctx.reason,
            audit_event_id=event_id,
        )
        return ActionResult(consumed, event_id, applied.after, list(applied.skipped))

    async def resolve_alone(self, token: str, status: str, reason: str | None) -> None:
        """Record a terminal outcome (expired, drifted) on a preview still ready."""
        async with self._pt.db.connection() as conn:
            await conn.execute(
                Q.resolve_preview,
                {"token": token, "status": status, "reason": reason, "audit_event_id": None},
            )

    async def _current(self, token: str) -> Preview | None:
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(Q.get_preview, {"token": token})
            row = await cur.fetchone()
        return Preview.from_row(row) if row else None
