"""Typed, readable errors of the action pipeline. ``code`` is stable for APIs and tests."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PowertoolsError


class ActionError(PowertoolsError):
    code = "action_error"
    status = 400


class Unauthorized(ActionError):
    code = "unauthorized"
    status = 403

    def __init__(self, action: str, resource: str) -> None:
        super().__init__(f"not allowed to {action.replace('_', ' ')} on {resource}")


class UnknownAction(ActionError):
    code = "unknown_action"
    status = 404

    def __init__(self, action: str) -> None:
        super().__init__(f"unknown action {action!r}")


class UnknownTarget(ActionError):
    code = "unknown_target"
    status = 404

    def __init__(self, resource_type: str, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        shown = ", ".join(self.ids[:5]) + (" ..." if len(self.ids) > 5 else "")
        super().__init__(f"no {resource_type.replace('_', ' ')} {shown}")


class InvalidParams(ActionError):
    code = "invalid_params"


class InvalidTargets(ActionError):
    code = "invalid_targets"


class NotApplicable(ActionError):
    """The action does not apply to the target's current state (e.g. pausing a paused entry)."""

    code = "not_applicable"
    status = 409


class PreviewNotFound(ActionError):
    code = "preview_not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("no such preview: start again from the page and preview the action")


class PreviewConsumed(ActionError):
    code = "preview_consumed"
    status = 409

    def __init__(self, audit_event_id: int | None) -> None:
        self.audit_event_id = audit_event_id
        suffix = f" (audit event {audit_event_id})" if audit_event_id else ""
        super().__init__(f"this preview was already confirmed{suffix}; nothing was changed again")


class PreviewExpired(ActionError):
    code = "preview_expired"
    status = 409

    def __init__(self) -> None:
        super().__init__("this preview has expired; nothing was changed. Preview the action again")


class PreviewDrifted(ActionError):
    code = "preview_drifted"
    status = 409

    def __init__(self, drifted: Sequence[str]) -> None:
        self.drifted = list(drifted)
        shown = ", ".join(self.drifted[:10]) + (" ..." if len(self.drifted) > 10 else "")
        super().__init__(
            f"the target changed since the preview ({shown}); nothing was changed. "
            "Preview the action again to see the current state"
        )


class PreviewOtherActor(ActionError):
    code = "preview_other_actor"
    status = 403

    def __init__(self) -> None:
        super().__init__("this preview belongs to another operator; nothing was changed")


class ReasonRequired(ActionError):
    code = "reason_required"

    def __init__(self, action: str) -> None:
        super().__init__(f"a reason is required to {action.replace('_', ' ')}")


class ReasonTooShort(ActionError):
    code = "reason_too_short"

    def __init__(self, minimum: int) -> None:
        super().__init__(f"the reason must be at least {minimum} characters")


class ReasonTooLong(ActionError):
    code = "reason_too_long"

    def __init__(self, maximum: int) -> None:
        super().__init__(f"the reason must be at most {maximum} characters")


class InvalidReason(ActionError):
    code = "invalid_reason"

    def __init__(self, why: str = "contains control characters") -> None:
        super().__init__(f"the reason {why}; write it as plain text")
