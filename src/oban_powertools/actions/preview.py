"""A preview: what an action will do to which targets, stored once under a single-use token.

What the pipeline shows before a change and checks again at confirm, and what a confirm
returns (:class:`ActionResult`); the helpers here shape a preview into its audit event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .base import RowSnapshots, Snapshot
from .errors import PreviewConsumed, PreviewDrifted, PreviewExpired

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
    # Previewed targets that had changed at confirm and were left as they are (only an
    # action that selected its own set applies the rest; see Applied).
    skipped: list[str] = field(default_factory=list)


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


def skipped_detail(
    detail: Mapping[str, Any], changed: Sequence[str], skipped: Sequence[str]
) -> dict[str, Any]:
    """A confirm's event detail when some previewed targets had changed and were left as
    they are: ``targets`` the ones changed, ``skipped`` the others, and the effect says so."""
    shown = ", ".join(skipped[:20]) + (
        f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    )
    note = (
        f" At confirm {len(skipped)} of the {len(changed) + len(skipped)} previewed targets "
        f"had changed since the preview and were left as they are: {shown}."
    )
    return {
        **detail,
        "effect": f"{detail.get('effect', '')}{note}",
        "targets": list(changed),
        "skipped": list(skipped),
    }


def not_applicable(problems: Sequence[tuple[str, str]], count: int) -> str:
    listed = "; ".join(f"{t}: {why}" for t, why in problems[:10])
    return f"{count} target(s) cannot take this action: {listed}"


def resource_id_for(targets: Sequence[str]) -> str:
    return targets[0] if len(targets) == 1 else f"bulk:{len(targets)}"
