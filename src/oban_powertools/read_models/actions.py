"""Previews and results of actions as the confirm panel and result page show them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..actions import Action, Preview, get_action
from ..display import Display
from ..seams import Resource
from .principal import ShownPrincipal, shown_actor

MAX_LISTED_TARGETS = 200


@dataclass(frozen=True, slots=True)
class PreviewView:
    token: str
    action: str
    label: str
    resource: str
    resource_type: str
    targets: list[str]
    more_targets: int
    effect: str
    actor: ShownPrincipal
    status: str
    created_at: datetime
    expires_at: datetime
    destructive: bool
    reason_required: bool
    params: dict[str, str]


def preview_view(
    display: Display, preview: Preview, *, require_reason_for_all: bool
) -> PreviewView:
    action: Action = get_action(preview.action)
    resource = Resource(preview.resource_type, preview.resource_id)
    listed = preview.targets[:MAX_LISTED_TARGETS]
    return PreviewView(
        token=preview.token,
        action=preview.action,
        label=action.label,
        resource=display.text("resource", preview.resource, resource=resource, field="resource"),
        resource_type=preview.resource_type,
        targets=[display.text("target", t, resource=resource, field="target") for t in listed],
        more_targets=len(preview.targets) - len(listed),
        effect=display.free_text("effect", preview.effect, resource=resource, field="effect"),
        actor=shown_actor(display, preview.actor_id, preview.actor_label),
        status=preview.status,
        created_at=preview.created_at,
        expires_at=preview.expires_at,
        destructive=action.destructive,
        reason_required=action.destructive or require_reason_for_all,
        params={
            k: display.text("param", v, resource=resource, field=k)
            for k, v in preview.params.items()
        },
    )


def back_path(resource_type: str, targets: list[str]) -> str:
    """Where the operator came from, by the kind of target (for "back" links)."""
    if resource_type == "cron_entry" and len(targets) == 1:
        return f"/cron/{targets[0]}"
    if resource_type == "queue":
        return "/queues"
    if resource_type == "job" and len(targets) == 1:
        return f"/jobs/{targets[0]}"
    if resource_type == "job":
        return "/jobs"
    return "/"
