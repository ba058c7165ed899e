"""Who may act, on what, with which reason: the checks every preview and confirm passes.

The auth seam is asked server side for every target (or once, through the optional
``authorize_many``), at preview and again at confirm; a refusal is written to the audit
trail as ``security.denied``.
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..audit.writer import write_event
from ..seams import ANONYMOUS, Principal, Resource, resolve
from .base import Action
from .errors import InvalidReason, InvalidTargets, ReasonRequired, ReasonTooLong, ReasonTooShort
from .preview import resource_id_for

if TYPE_CHECKING:
    from ..powertools import Powertools


class Gate:
    """The authorization, reason and target checks of one Powertools instance."""

    def __init__(self, powertools: Powertools) -> None:
        self._pt = powertools

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

    async def may_select(self, actor: Any, action: Action) -> bool:
        """Whether the actor may take the action on its kind at all (``Resource(kind)``, the
        question a page asks before it offers the action): asked before an action reads
        the set it selects itself, so a refused actor learns nothing of that set."""
        if actor is None:
            return False
        allowed = await resolve(
            self._pt.config.auth.authorize(actor, action.name, Resource(action.resource_type))
        )
        return allowed is True

    async def authorized(self, actor: Any, action: Action, targets: Sequence[str]) -> bool:
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

    async def record_denial(
        self, actor: Any, action: Action, targets: Sequence[str], surface: str, stage: str
    ) -> Principal:
        """Write the refusal's audit event; the principal it names."""
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
        return principal

    def check_reason(self, action: Action, reason: str | None) -> str | None:
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

    def parse_targets(self, action: Action, raw: str | Sequence[str]) -> list[str]:
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
