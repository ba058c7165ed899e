# ==========================================================================================
#  STARTER: THE HOST OWNS THIS FILE.
#
#  Written once by `oban-powertools install`, which never overwrites it after you edit it.
#  As generated it DENIES EVERYTHING: nobody is signed in and nothing is authorized, so
#  /ops/jobs answers 401 until you connect it to your app's users and permissions.
#  Each method may be `async def` (e.g. to look the user up in your database).
# ==========================================================================================
"""The auth seam for oban-powertools: who is acting, what they may do, how they are audited.

The library calls these methods server side on every page view and every action. Page
views ask ``authorize`` for one of ``view_overview``, ``view_cron``, ``view_queues``,
``view_jobs``, ``view_audit``, ``view_forensics``, ``view_oban_web``, ``view_metrics``
(the Prometheus exposition); actions ask for the
action's name (``pause_cron_entry``, ``resume_cron_entry``, ``run_cron_entry``,
``pause_queue``, ``resume_queue``, ``scale_queue``, ``set_queue_limits``, ``retry_job``,
``cancel_job``, ``discard_job``) with the target, e.g. ``Resource("cron_entry", "nightly_sync")``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from oban_powertools import Principal, Resource


class PowertoolsAuth:
    """Deny by default: return None or False whenever you are unsure."""

    def current_actor(self, request: Request) -> Any | None:
        """The signed-in user making this request, or None for an anonymous visitor.

        Read it from whatever your app already uses, for example
        ``request.session.get("user_id")`` (Starlette's SessionMiddleware), ``request.user``
        (AuthenticationMiddleware) or ``request.state.user`` (your own middleware), and
        return your user object. None makes the control plane answer 401 (or redirect to
        ``Config.login_url`` when you set it).
        """
        return None

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        """Whether ``actor`` may view the page or perform the action on ``resource``.

        ``action`` is a page permission (``view_*``) or an action name; ``resource.type``
        is e.g. ``"cron_entry"``, ``"queue"``, ``"job"``, ``"overview"``, and
        ``resource.id`` the target (None for a whole page). A typical rule::

            if not isinstance(actor, User):
                return False
            if action.startswith("view_"):
                return actor.has_role("ops-viewer") or actor.has_role("operator")
            return actor.has_role("operator")
        """
        return False

    def actor_for_cli(self, actor_id: str) -> Any | None:
        """The user ``oban-powertools action ... --actor ACTOR_ID`` acts as, or None.

        The CLI has no request and no session: it asks you to map the id given on the
        command line to one of your users. ``authorize`` then decides what that user may
        do, and ``audit_principal`` records them, as for a page. Return None (the starter
        does) and the CLI refuses every action. Whoever can run the CLI on the host
        usually holds its secrets already; map only ids of real operators, e.g.::

            user = User.objects.filter(username=actor_id, is_active=True).first()
            return user if user is not None and user.has_role("operator") else None
        """
        return None

    def audit_principal(self, actor: Any) -> Principal:
        """How ``actor`` is recorded in the append-only audit log.

        Use a stable id (not a display name that can change), a type and a readable label,
        e.g. ``Principal(id=str(actor.id), type="user", label=actor.email)``. It is only
        called for actors ``authorize`` let through, so raising here blocks every action.
        """
        raise NotImplementedError(
            "PowertoolsAuth.audit_principal is still the starter: return "
            "Principal(id=..., type=..., label=...) for your user object."
        )
