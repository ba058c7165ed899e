"""Test doubles for the host seams: real objects with real rules, no mocks of the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oban_powertools import Config, DisplayContext, Powertools, Principal, Resource

VIEWS = frozenset(
    {
        "view_overview",
        "view_cron",
        "view_queues",
        "view_jobs",
        "view_audit",
        "view_forensics",
        "view_oban_web",
        "view_metrics",
    }
)


@dataclass(frozen=True)
class Actor:
    id: str
    label: str
    role: str  # operator | viewer | guest
    allowed_actions: frozenset[str] | None = None  # None: every action (operators)
    allowed_resources: frozenset[str] | None = None  # e.g. {"cron_entry:nightly_sync"}


OPERATOR = Actor("ops-demo", "Ops Demo", "operator")
OTHER_OPERATOR = Actor("ops-other", "Ops Other", "operator")
VIEWER = Actor("ops-viewer", "Ops Viewer", "viewer")
GUEST = Actor("ops-guest", "Ops Guest", "guest")


class RoleAuth:
    """Operators act, viewers view, guests get nothing. Requests carry ``x-actor``."""

    actors = {a.id: a for a in (OPERATOR, OTHER_OPERATOR, VIEWER, GUEST)}

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def current_actor(self, request: Any) -> Actor | None:
        return self.actors.get(request.headers.get("x-actor", ""))

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        self.calls.append((getattr(actor, "id", "?"), action, str(resource)))
        if not isinstance(actor, Actor) or actor.role == "guest":
            return False
        if action in VIEWS:
            return True
        if actor.role != "operator":
            return False
        if actor.allowed_actions is not None and action not in actor.allowed_actions:
            return False
        return actor.allowed_resources is None or str(resource) in actor.allowed_resources

    def audit_principal(self, actor: Any) -> Principal:
        return Principal(id=actor.id, type="user", label=actor.label)


class RedactingDisplay:
    """Redacts any field named like a secret, at any depth, on every surface; remembers
    the surfaces it was asked about (so tests can see a surface was covered)."""

    secret_fields = frozenset({"password", "api_key"})

    def __init__(self) -> None:
        self.surfaces: set[str] = set()

    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None:
        self.surfaces.add(context.surface)
        if context.field is not None and context.field.lower() in self.secret_fields:
            return "[redacted]"
        return None


def make_powertools(db_url: str, **overrides: Any) -> Powertools:
    settings: dict[str, Any] = {
        "database_url": db_url,
        "auth": RoleAuth(),
        "display": RedactingDisplay(),
    }
    settings.update(overrides)
    return Powertools(Config(**settings))
