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

import inspect
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from ..audit.writer import event_params, write_event
from ..db import Conn
from ..db.queries import sql
from ..errors import InvalidArgument
from ..seams import ANONYMOUS, Principal, Resource, resolve
from .base import (
    Action,
    Applied,
    ApplyContext,
    ConfirmStatement,
    PreviewFields,
    RowSnapshots,
    Snapshot,
    drift_text,
    plan_text,
)
from .errors import (
    InvalidReason,
    InvalidTargets,
    NotApplicable,
    PreviewConsumed,
    PreviewDrifted,
    PreviewExpired,
    PreviewNotFound,
    PreviewOtherActor,
    ReasonRequired,
    ReasonTooLong,
    ReasonTooShort,
    Unauthorized,
    UnknownTarget,
)
from .registry import get_action

if TYPE_CHECKING:
    from ..powertools import Powertools


INSERT_PREVIEW = sql("previews", "insert_preview")
READ_PREVIEW = sql("previews", "read_preview")
LOCK_PREVIEW = sql("previews", "lock_preview")
GET_PREVIEW = sql("previews", "get_preview")
RESOLVE_PREVIEW = sql("previews", "resolve_preview")

# A bulk preview's stored before-state is only shipped to Python up to this many targets.
INLINE_BEFORE_MAX = 1000

SURFACES = ("web", "api", "cli", "system")
# secrets.token_urlsafe's alphabet; anything else cannot be one of our tokens.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Preview:
    token: str
    action: str
    resource_type: str
    resource_id: str
    targets: list[str]
    params: dict[str, Any]
    before: Mapping[str, Snapshot]
    effect: str
    plan_hash: str
    status: str
    actor_id: str
    actor_label: str
    surface: str
    created_at: datetime
    expires_at: datetime
    reason: str | None
    audit_event_id: int | None

    @property
    def resource(self) -> str:
        return f"{self.resource_type}:{self.resource_id}"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Preview:
        return cls(
            token=row["token"],
            action=row["action"],
            resource_type=row["resource_type"],
            resource_id=row["resource_id"],
            targets=list(row["targets"]),
            params=dict(row["params"]),
            before=dict(row["before"] or {}),
            effect=row["effect"],
            plan_hash=row["plan_hash"],
            status=row["status"],
            actor_id=row["actor_id"],
            actor_label=row["actor_label"],
            surface=row["surface"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            reason=row["reason"],
            audit_event_id=row["audit_event_id"],
        )


@dataclass(frozen=True, slots=True)
class ActionResult:
    preview: Preview
    audit_event_id: int
    after: Mapping[str, Snapshot]


def audit_snapshot(snapshots: Mapping[str, Snapshot], targets: Sequence[str]) -> Any:
    """One target's snapshot as is; a bulk set as counts by state.

    The exact target list goes into the event's detail, and each target's before-state
    stays on the preview: writing 100k snapshots twice into one audit row would make the
    audit trail the slowest part of a bulk action without telling an operator more.
    """
    if len(targets) == 1:
        return snapshots.get(targets[0])
    if isinstance(snapshots, RowSnapshots):
        return {"count": len(targets), "states": snapshots.count_by("state")}
    states: dict[str, int] = {}
    for target in targets:
        state = str(snapshots.get(target, {}).get("state", "unknown"))
        states[state] = states.get(state, 0) + 1
    return {"count": len(targets), "states": states}


def raise_for_status(preview: Preview) -> None:
    """Refuse a preview that was confirmed or resolved already, saying why."""
    if preview.status == "consumed":
        raise PreviewConsumed(preview.audit_event_id)
    if preview.status == "expired":
        raise PreviewExpired()
    if preview.status == "drifted":
        raise PreviewDrifted(preview.targets)


def event_detail(preview: Preview) -> dict[str, Any]:
    """The detail of a confirmed action's audit event (a bulk event lists its targets)."""
    detail: dict[str, Any] = {
        "effect": preview.effect,
        "params": preview.params,
        "plan_hash": preview.plan_hash,
    }
    if len(preview.targets) > 1:
        detail["targets"] = preview.targets
    return detail


def not_applicable(problems: Sequence[tuple[str, str]], count: int) -> str:
    listed = "; ".join(f"{t}: {why}" for t, why in problems[:10])
    return f"{count} target(s) cannot take this action: {listed}"


def resource_id_for(targets: Sequence[str]) -> str:
    return targets[0] if len(targets) == 1 else f"bulk:{len(targets)}"


class _Drifted(Exception):
    """Internal: leaves the execute transaction (rolling it back) when targets drifted."""

    def __init__(self, targets: list[str], reason: str | None) -> None:
        super().__init__(targets)
        self.targets = targets
        self.reason = reason


class Pipeline:
    """Previews and executes actions for one Powertools instance."""

    def __init__(self, powertools: Powertools) -> None:
        self._pt = powertools

    # -- helpers --------------------------------------------------------------------

    async def principal(self, actor: Any) -> Principal:
        if actor is None:
            return ANONYMOUS
        principal = await resolve(self._pt.config.auth.audit_principal(actor))
        if not isinstance(principal, Principal):
            raise TypeError(
                "auth.audit_principal must return oban_powertools.Principal, "
                f"got {type(principal).__name__}"
            )
        return principal

    async def _authorized(self, actor: Any, action: Action, targets: Sequence[str]) -> bool:
        if actor is None:
            return False
        auth = self._pt.config.auth
        name, kind = action.name, action.resource_type
        authorize_many = getattr(auth, "authorize_many", None)
        if len(targets) > 1 and callable(authorize_many):
            answers = await resolve(
                authorize_many(actor, name, [Resource(kind, t) for t in targets])
            )
            # One True per target, or no: a short, long or truthy-but-not-True answer denies.
            try:
                count = len(answers)
            except TypeError:
                return False
            return count == len(targets) and all(a is True for a in answers)
        # Once per target, also for a bulk set of 100k: a tight loop that awaits only what
        # the host's seam made awaitable.
        authorize = auth.authorize
        for target in targets:
            allowed = authorize(actor, name, Resource(kind, target))
            if allowed is True:
                continue
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if allowed is not True:
                return False
        return True

    async def _record_denial(
        self, actor: Any, action: Action, targets: Sequence[str], surface: str, stage: str
    ) -> None:
        principal = await self.principal(actor)
        async with self._pt.db.transaction() as conn:
            await write_event(
                conn,
                action="security.denied",
                command=action.name,
                resource_type=action.resource_type,
                resource_id=resource_id_for(targets),
                principal=principal,
                surface=surface,
                outcome="denied",
                detail={"stage": stage, "targets": list(targets[:100])},
            )

    def _check_reason(self, action: Action, reason: str | None) -> str | None:
        config = self._pt.config
        text = (reason or "").strip()
        if not text:
            if action.destructive or config.require_reason == "all":
                raise ReasonRequired(action.name)
            return None
        # Length first: a megabyte of text is refused without scanning it.
        if len(text) < config.reason_min_length:
            raise ReasonTooShort(config.reason_min_length)
        if len(text) > config.reason_max_length:
            raise ReasonTooLong(config.reason_max_length)
        for ch in text:
            category = unicodedata.category(ch)
            if category == "Cc" and ch not in "\n\t":
                raise InvalidReason()
            if category == "Cs":
                # A lone surrogate cannot be encoded for the database; refuse it up front
                # rather than fail mid-transaction.
                raise InvalidReason("contains characters that are not text")
        return text

    def _targets(self, action: Action, raw: str | Sequence[str]) -> list[str]:
        items = [raw] if isinstance(raw, str) else list(raw)
        if not items:
            raise InvalidTargets("choose at least one target")
        if len(items) > action.max_targets:
            raise InvalidTargets(
                f"{action.name} takes at most {action.max_targets} target(s), got {len(items)}"
            )
        parsed = [action.parse_target(str(item)) for item in items]
        if len(set(parsed)) != len(parsed):
            raise InvalidTargets("the same target is listed twice")
        return parsed

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
        action = get_action(action_name)
        target_ids = self._targets(action, targets)
        if not await self._authorized(actor, action, target_ids):
            await self._record_denial(actor, action, target_ids, surface, "preview")
            raise Unauthorized(action.name, f"{action.resource_type}:{resource_id_for(target_ids)}")
        parsed = action.parse_params(params or {})
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
                return await self._store_preview(conn, action, target_ids, parsed, fields)
        if stored.missing:
            raise UnknownTarget(action.resource_type, stored.missing)
        if stored.problems:
            if len(target_ids) == 1:
                raise NotApplicable(stored.problems[0][1])
            raise NotApplicable(not_applicable(stored.problems, stored.problem_count))
        assert stored.row is not None
        return Preview.from_row(stored.row)

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
            INSERT_PREVIEW,
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
            cur = await conn.execute(GET_PREVIEW, {"token": token})
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
        principal = await self.principal(actor)
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(READ_PREVIEW, {"token": token, "inline": INLINE_BEFORE_MAX})
            row = await cur.fetchone()
        if row is None:
            raise PreviewNotFound()
        preview = Preview.from_row(row)
        action = get_action(preview.action)
        raise_for_status(preview)
        if actor is None or preview.actor_id != principal.id:
            # Someone holding another operator's token: refused and recorded.
            await self._record_denial(
                actor, action, preview.targets, surface, "execute: another operator's preview"
            )
            raise PreviewOtherActor()
        if not await self._authorized(actor, action, preview.targets):
            await self._record_denial(actor, action, preview.targets, surface, "execute")
            raise Unauthorized(action.name, preview.resource)
        text = self._check_reason(action, reason)
        if row["is_expired"]:
            await self._resolve_alone(token, "expired", text)
            raise PreviewExpired()
        ctx = ApplyContext(
            principal, surface, text, self._pt.config.prefix, datetime.now(UTC), token
        )
        expected = row["before"]
        statement = action.confirm_statement(ctx, preview.targets, preview.params, expected)
        if statement is not None:
            return await self._confirm_in_one_statement(
                action, preview, principal, surface, text, statement
            )
        return await self._confirm_in_transaction(
            action, preview, principal, surface, text, ctx, expected
        )

    async def _confirm_in_one_statement(
        self,
        action: Action,
        preview: Preview,
        principal: Principal,
        surface: str,
        text: str | None,
        statement: ConfirmStatement,
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
            **event_params(
                action=action.event,
                command=action.name,
                resource_type=action.resource_type,
                resource_id=preview.resource_id,
                principal=principal,
                surface=surface,
                reason=text,
                detail=event_detail(preview),
            ),
            "token": preview.token,
            "actor_id": principal.id,
        }
        async with self._pt.db.connection() as conn:
            cur = await conn.execute(statement.sql, params)
            row = await cur.fetchone()
        assert row is not None
        if row["guarded"] == 0:
            # Not ready any more since it was read: another confirm won, or it expired.
            current = await self.get_preview(preview.token)
            if current is None:
                raise PreviewNotFound()
            raise_for_status(current)
            await self._resolve_alone(preview.token, "expired", text)
            raise PreviewExpired()
        if row["event_id"] is None:
            # Locked and ready, but a target is no longer as previewed: nothing changed.
            await self._resolve_alone(preview.token, "drifted", text)
            raise PreviewDrifted(preview.targets)
        event_id = int(row["event_id"])
        (target,) = preview.targets
        consumed = replace(preview, status="consumed", reason=text, audit_event_id=event_id)
        return ActionResult(consumed, event_id, {target: dict(row["after"])})

    async def _confirm_in_transaction(
        self,
        action: Action,
        preview: Preview,
        principal: Principal,
        surface: str,
        text: str | None,
        ctx: ApplyContext,
        expected: Mapping[str, Snapshot] | None,
    ) -> ActionResult:
        """Lock the preview, check it again, apply, audit and consume in one transaction."""
        token = preview.token
        expired = False
        try:
            async with self._pt.db.transaction() as conn:
                cur = await conn.execute(LOCK_PREVIEW, {"token": token})
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
                        raise _Drifted(applied.drifted, text)
                    return await self._consume(
                        conn, action, preview, principal, surface, text, applied
                    )
        except _Drifted as drift:
            # The transaction rolled back: nothing of the set was applied. Record why.
            await self._resolve_alone(token, "drifted", drift.reason)
            raise PreviewDrifted(drift.targets) from None
        assert expired
        await self._resolve_alone(token, "expired", text)
        raise PreviewExpired()

    async def _consume(
        self,
        conn: Any,
        action: Action,
        preview: Preview,
        principal: Principal,
        surface: str,
        reason: str | None,
        applied: Applied,
    ) -> ActionResult:
        """Write the audit event and consume the preview, in the caller's transaction."""
        targets = preview.targets
        single = len(targets) == 1
        event_id = await write_event(
            conn,
            action=action.event,
            command=action.name,
            resource_type=action.resource_type,
            resource_id=preview.resource_id,
            principal=principal,
            surface=surface,
            outcome="succeeded",
            reason=reason,
            preview_token=preview.token,
            before=applied.before.get(targets[0])
            if single
            else audit_snapshot(applied.before, targets),
            after=applied.after.get(targets[0])
            if single
            else audit_snapshot(applied.after, targets),
            detail=event_detail(preview),
            consume_preview=True,
        )
        consumed = replace(
            preview,
            before=preview.before or applied.before,
            status="consumed",
            reason=reason,
            audit_event_id=event_id,
        )
        return ActionResult(consumed, event_id, applied.after)

    async def _resolve_alone(self, token: str, status: str, reason: str | None) -> None:
        """Record a terminal outcome (expired, drifted) on a preview still ready."""
        async with self._pt.db.connection() as conn:
            await conn.execute(
                RESOLVE_PREVIEW,
                {"token": token, "status": status, "reason": reason, "audit_event_id": None},
            )

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
