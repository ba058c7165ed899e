"""The one mutation pipeline: authorize → preview → confirm with reason → execute.

Every surface (page, JSON API, Python API, CLI) calls these functions. Execute reads the
preview (its action, targets and actor never change once stored), re-authorizes and
checks the reason, then makes the change in one transaction: the preview locked and
checked again (ready, unexpired), the targets checked for drift, the change applied, the
preview consumed and the audit event written. Actions that can express all of that as one
statement (:class:`~.base.ConfirmStatement`: cron pause and resume) do, which spares the
BEGIN and COMMIT round trips; the others use a transaction. Any failure leaves nothing,
except the terminal outcomes ``expired`` and ``drifted``, which are recorded on the
preview (and nothing else changes) so a retry with the same token says why it failed.

Drift is checked by the apply itself (:meth:`Action.apply_checked`): job actions run one
``UPDATE`` that changes a job only while its state and attempt still match the preview, and
a target it did not change has drifted. Then the whole transaction rolls back (nothing of
the set is applied) and a second, short statement records ``drifted`` on the preview.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from .. import telemetry
from ..db import Conn
from ..db.queries import Statements
from ..errors import InvalidArgument
from ..seams import Principal
from .base import Action, ApplyContext, PreviewFields, drift_text, plan_text
from .confirm import Confirm
from .errors import (
    NotApplicable,
    PreviewDrifted,
    PreviewExpired,
    PreviewNotFound,
    PreviewOtherActor,
    Unauthorized,
    UnknownTarget,
)
from .gate import Gate
from .preview import (
    INLINE_BEFORE_MAX,
    SURFACES,
    TOKEN_PATTERN,
    ActionResult,
    Preview,
    not_applicable,
    raise_for_status,
    resource_id_for,
)
from .registry import get_action

if TYPE_CHECKING:
    from ..powertools import Powertools

Q = Statements(previews="insert_preview read_preview get_preview")

# What the pipeline did, for hosts' telemetry handlers (docs/telemetry.md). ``targets`` is
# how many resources the action covers; ``duration`` is in nanoseconds, as oban's.
PREVIEWED = telemetry.declare(
    "oban_powertools.action.previewed",
    measurements=("targets", "duration"),
    metadata=("action", "resource", "surface", "actor_id"),
)
CONFIRMED = telemetry.declare(
    "oban_powertools.action.confirmed",
    measurements=("targets", "duration"),
    metadata=("action", "resource", "surface", "actor_id", "audit_event_id"),
)
DENIED = telemetry.declare(
    "oban_powertools.action.denied",
    measurements=("targets",),
    metadata=("action", "resource", "surface", "actor_id", "stage"),
)
FAILED = telemetry.declare(
    "oban_powertools.action.failed",
    measurements=("targets",),
    metadata=("action", "resource", "surface", "actor_id", "outcome"),
)


class Pipeline:
    """Previews and executes actions for one Powertools instance."""

    def __init__(self, powertools: Powertools) -> None:
        self._pt = powertools
        self._gate = Gate(powertools)
        self._confirm = Confirm(powertools)

    async def principal(self, actor: Any) -> Principal:
        """The audit principal of ``actor`` (anonymous for no actor)."""
        return await self._gate.principal(actor)

    # -- the pipeline ---------------------------------------------------------------

    async def preview(
        self,
        actor: Any,
        action_name: str,
        targets: str | Sequence[str],
        params: Mapping[str, Any] | None = None,
        *,
        surface: str = "api",
    ) -> Preview:
        """Authorize, snapshot the targets and store a single-use preview."""
        if surface not in SURFACES:
            raise InvalidArgument(f"unknown surface {surface!r}")
        started = time.monotonic_ns()
        action = get_action(action_name)
        if action.selects_targets and not targets:
            # The action finds its set (a queue's orphaned jobs): the seam is asked about the
            # action before the set is read, then about each found target like a given one.
            if not await self._gate.may_select(actor, action):
                await self._deny(actor, action, [], surface, "preview")
                raise Unauthorized(action.name, f"{action.resource_type}:bulk")
            parsed = action.with_settings(action.parse_params(params or {}), self._pt.config)
            async with self._pt.db.connection() as conn:
                found, parsed = await action.select_targets(conn, parsed)
            target_ids = self._gate.parse_targets(action, found)
        else:
            target_ids = self._gate.parse_targets(action, targets)
            parsed = None
        if not await self._gate.authorized(actor, action, target_ids):
            await self._deny(actor, action, target_ids, surface, "preview")
            raise Unauthorized(action.name, f"{action.resource_type}:{resource_id_for(target_ids)}")
        if parsed is None:
            parsed = action.with_settings(action.parse_params(params or {}), self._pt.config)
        principal = await self.principal(actor)
        fields = PreviewFields(
            token=secrets.token_urlsafe(24),
            resource_id=resource_id_for(target_ids),
            actor_id=principal.id,
            actor_type=principal.type,
            actor_label=principal.label,
            surface=surface,
            ttl=self._pt.config.preview_ttl,
        )
        # Where the action can (a set of up to 100k jobs, a cron pause), the database
        # snapshots, checks and stores the preview in one statement: one round trip, and a
        # large set's snapshots never travel to Python and back. Otherwise the snapshot is
        # one statement and the preview row another; neither needs BEGIN and COMMIT.
        async with self._pt.db.connection() as conn:
            stored = await action.store_preview(conn, target_ids, parsed, fields)
            if stored is None:
                preview = await self._store_preview(conn, action, target_ids, parsed, fields)
                return self._previewed(preview, started)
        if stored.missing:
            raise UnknownTarget(action.resource_type, stored.missing)
        if stored.problems:
            if len(target_ids) == 1:
                raise NotApplicable(stored.problems[0][1])
            raise NotApplicable(not_applicable(stored.problems, stored.problem_count))
        assert stored.row is not None
        return self._previewed(Preview.from_row(stored.row), started)

    def _previewed(self, preview: Preview, started: int) -> Preview:
        telemetry.emit(
            PREVIEWED,
            {"targets": len(preview.targets), "duration": time.monotonic_ns() - started},
            {
                "action": preview.action,
                "resource": preview.resource,
                "surface": preview.surface,
                "actor_id": preview.actor_id,
            },
        )
        return preview

    async def _deny(
        self, actor: Any, action: Action, targets: Sequence[str], surface: str, stage: str
    ) -> None:
        """Record a refusal (the audit event), then report it."""
        principal = await self._gate.record_denial(actor, action, targets, surface, stage)
        telemetry.emit(
            DENIED,
            {"targets": len(targets)},
            {
                "action": action.name,
                "resource": f"{action.resource_type}:{resource_id_for(targets)}",
                "surface": surface,
                "actor_id": principal.id,
                "stage": stage,
            },
        )

    @staticmethod
    def _failed(preview: Preview, surface: str, outcome: str) -> None:
        telemetry.emit(
            FAILED,
            {"targets": len(preview.targets)},
            {
                "action": preview.action,
                "resource": preview.resource,
                "surface": surface,
                "actor_id": preview.actor_id,
                "outcome": outcome,
            },
        )

    async def _store_preview(
        self,
        conn: Conn,
        action: Action,
        target_ids: list[str],
        parsed: dict[str, Any],
        fields: PreviewFields,
    ) -> Preview:
        """Snapshot the targets in Python, check them, and store the preview."""
        snapshots = await action.snapshot(conn, target_ids, lock=False)
        missing = [t for t in target_ids if t not in snapshots]
        if missing:
            raise UnknownTarget(action.resource_type, missing)
        problems = [(t, why) for t in target_ids if (why := action.check(snapshots[t], parsed))]
        if problems:
            if len(target_ids) == 1:
                raise NotApplicable(problems[0][1])
            raise NotApplicable(not_applicable(problems[:10], len(problems)))
        cur = await conn.execute(
            Q.insert_preview,
            {
                "token": fields.token,
                "action": action.name,
                "resource_type": action.resource_type,
                "resource_id": fields.resource_id,
                "targets": Jsonb(target_ids),
                "params": Jsonb(parsed),
                "before": Jsonb(snapshots),
                "effect": action.effect(snapshots, parsed),
                "plan": plan_text(action.name, parsed),
                "drift": drift_text(action, target_ids, snapshots),
                "actor_id": fields.actor_id,
                "actor_type": fields.actor_type,
                "actor_label": fields.actor_label,
                "surface": fields.surface,
                "ttl": fields.ttl,
            },
        )
        row = await cur.fetchone()
        assert row is not None
        return Preview.from_row({**row, "before": snapshots})

    async def get_preview(self, token: str) -> Preview | None:
        if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
            return None  # not a token we could have issued (e.g. a NUL byte from a form)
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(Q.get_preview, {"token": token})
            row = await cur.fetchone()
        return Preview.from_row(row) if row else None

    async def execute(
        self, actor: Any, token: str, reason: str | None = None, *, surface: str = "api"
    ) -> ActionResult:
        """Confirm a preview: the change, its consumption and its audit event commit together.

        The preview is read first, without a lock: its action, targets and actor never
        change once stored, so who may confirm it is decided on that read. Its status is
        then checked again where it is locked, in the statement or transaction that makes
        the change, so two confirms of one token can never both apply.
        """
        if surface not in SURFACES:
            raise InvalidArgument(f"unknown surface {surface!r}")
        if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
            raise PreviewNotFound()
        started = time.monotonic_ns()
        principal = await self.principal(actor)
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(Q.read_preview, {"token": token, "inline": INLINE_BEFORE_MAX})
            row = await cur.fetchone()
        if row is None:
            raise PreviewNotFound()
        preview = Preview.from_row(row)
        action = get_action(preview.action)
        raise_for_status(preview)
        if actor is None or preview.actor_id != principal.id:
            # Someone holding another operator's token: refused and recorded.
            await self._deny(
                actor, action, preview.targets, surface, "execute: another operator's preview"
            )
            raise PreviewOtherActor()
        if not await self._gate.authorized(actor, action, preview.targets):
            await self._deny(actor, action, preview.targets, surface, "execute")
            raise Unauthorized(action.name, preview.resource)
        text = self._gate.check_reason(action, reason)
        if row["is_expired"]:
            await self._confirm.resolve_alone(token, "expired", text)
            self._failed(preview, surface, "expired")
            raise PreviewExpired()
        ctx = ApplyContext(
            principal, surface, text, self._pt.config.prefix, datetime.now(UTC), token
        )
        expected = row["before"]
        statement = action.confirm_statement(ctx, preview.targets, preview.params, expected)
        try:
            if statement is not None:
                result = await self._confirm.in_one_statement(action, preview, ctx, statement)
            else:
                result = await self._confirm.in_transaction(action, preview, ctx, expected)
        except PreviewExpired:
            self._failed(preview, surface, "expired")
            raise
        except PreviewDrifted:
            self._failed(preview, surface, "drifted")
            raise
        telemetry.emit(
            CONFIRMED,
            {"targets": len(preview.targets), "duration": time.monotonic_ns() - started},
            {
                "action": preview.action,
                "resource": preview.resource,
                "surface": surface,
                "actor_id": principal.id,
                "audit_event_id": result.audit_event_id,
            },
        )
        return result

    async def run(
        self,
        actor: Any,
        action_name: str,
        targets: str | Sequence[str],
        *,
        reason: str | None = None,
        params: Mapping[str, Any] | None = None,
        surface: str = "api",
    ) -> ActionResult:
        """Preview and execute in one call (scripts), through exactly the same path."""
        preview = await self.preview(actor, action_name, targets, params, surface=surface)
        return await self.execute(actor, preview.token, reason, surface=surface)
