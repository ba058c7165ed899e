"""Previews and results of actions as the confirm panel and result page show them."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # The jobs a workflow action changes, one line each ("job 12 (step fetch): executing
    # -> cancelled"): its exact set, which its one target (the workflow) does not show.
    touches: list[str] = field(default_factory=list)


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
        touches=touched_jobs(display, preview),
    )


def touched_jobs(display: Display, preview: Preview) -> list[str]:
    """The jobs a workflow action's snapshot lists, each with its step (through the
    display policy: step names are host data), its state now and what it becomes."""
    if preview.resource_type != "workflow":
        return []
    lines = []
    for snapshot in preview.before.values():
        for job in snapshot.get("jobs", []):
            wid = str(job.get("workflow_id", preview.resource_id))
            step = display.text(
                "workflow_step", job["step"], resource=Resource("workflow", wid), field="step"
            )
            lines.append(f"job {job['id']} (step {step}): {job['state']} → {job['to']}")
    return lines


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
    if resource_type == "workflow" and len(targets) == 1:
        return f"/workflows/{targets[0]}"
    return "/"
