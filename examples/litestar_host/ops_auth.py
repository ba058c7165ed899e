"""The host's auth seam for oban-powertools, on the host's own users and login cookie."""

from __future__ import annotations

from typing import Any

from oban_powertools import Principal, Resource

from . import accounts

VIEW_PERMISSIONS = frozenset(
    {
        "view_overview",
        "view_cron",
        "view_queues",
        "view_jobs",
        "view_audit",
        "view_forensics",
        "view_oban_web",
    }
)


class PowertoolsAuth:
    def current_actor(self, request: Any) -> accounts.User | None:
        # The control plane hands a Starlette request; the cookie is the one /login set.
        return accounts.signed_in(request.cookies.get(accounts.COOKIE))

    def actor_for_cli(self, actor_id: str) -> accounts.User | None:
        # Whoever runs the CLI on the host already holds its secrets; the account's role
        # still decides what the actor may do.
        return accounts.find(actor_id)

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        if not isinstance(actor, accounts.User):
            return False
        if actor.role == "operator":
            return True
        if actor.role == "viewer":
            return action in VIEW_PERMISSIONS
        return False

    def audit_principal(self, actor: Any) -> Principal:
        if not isinstance(actor, accounts.User):
            raise TypeError(f"not an account of this host: {type(actor).__name__}")
        return Principal(id=actor.username, type="user", label=actor.display_name)
