"""The auth seam on Django's users, sessions and permissions.

Who is acting: the user of the Django session named by the request's session cookie, the
same lookup (backend, session hash) as ``django.contrib.auth.get_user``, so a password
change or a logout signs the user out of the console too.

What they may do, deny by default:

1. only an active, signed-in Django user, and (``require_staff=True``, the default) only
   staff, as for Django's admin;
2. each page view and action needs its Django permission, ``oban_powertools.<name>``
   (``oban_powertools.view_cron``, ``oban_powertools.pause_cron_entry`` ...), which
   ``migrate`` creates once ``oban_powertools.contrib.django`` is in ``INSTALLED_APPS``;
   ``permissions=`` maps a name to another permission, or to None for nobody;
3. names the library does not define are refused; superusers hold every permission
   (Django's own rule) but still need ``is_staff`` while it is required.

Django's ORM is synchronous: every lookup runs through ``asgiref``'s ``sync_to_async`` in
Django's one sync thread, with stale connections closed before and after, as Django's own
request handler does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any, Literal

from ...actions import all_actions
from ...errors import ConfigError
from ...seams import Principal, Resource

EXTRA = "oban-powertools[django]"
APP_LABEL = "oban_powertools"
VIEW_PERMISSIONS = (
    "view_overview",
    "view_cron",
    "view_queues",
    "view_jobs",
    "view_audit",
    "view_forensics",
    "view_oban_web",
    "view_metrics",
)


def permission_names() -> tuple[str, ...]:
    """Every page permission and action name the library asks the seam about."""
    return VIEW_PERMISSIONS + tuple(action.name for action in all_actions())


def require_django() -> None:
    """Raise a ConfigError naming the extra when Django is not importable."""
    try:
        import_module("django")
        import_module("asgiref.sync")
    except ImportError as exc:
        raise ConfigError(
            "auth",
            f"DjangoAuth needs Django, which is not installed ({exc})",
            f"Install the extra: pip install '{EXTRA}'.",
        ) from exc


def ensure_django_setup() -> None:
    """Set Django up in a process that has not (the CLI, a script); a no-op otherwise."""
    import django
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if apps.ready:
        return
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise ConfigError(
            "DJANGO_SETTINGS_MODULE",
            f"Django is not configured ({exc})",
            "Set DJANGO_SETTINGS_MODULE=yourproject.settings, as manage.py does.",
        ) from exc


def _sync[T](function: Callable[..., T]) -> Callable[..., Any]:
    """``function`` as a coroutine run in Django's sync thread, with fresh connections."""
    from asgiref.sync import sync_to_async
    from django.db import close_old_connections

    def call(*args: Any) -> T:
        ensure_django_setup()
        close_old_connections()
        try:
            return function(*args)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=True)


class _SessionOnly:
    """What ``django.contrib.auth.get_user`` reads from a request: its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


class DjangoAuth:
    """``Config(auth=DjangoAuth())``: the auth seam on ``django.contrib.auth``.

    Subclass it to change one rule (e.g. ``current_actor`` for a token header); the
    installer's starter ``ops_auth.py`` does exactly that, empty.
    """

    def __init__(
        self,
        *,
        permissions: Mapping[str, str | None] | None = None,
        require_staff: bool = True,
        principal_id: Literal["username", "pk"] = "username",
    ) -> None:
        require_django()
        if principal_id not in ("username", "pk"):
            raise ConfigError(
                "principal_id", f"{principal_id!r} is not 'username' or 'pk'", "Pick one."
            )
        mapped: dict[str, str | None] = {name: f"{APP_LABEL}.{name}" for name in permission_names()}
        mapped.update(permissions or {})
        self.permissions: Mapping[str, str | None] = mapped
        self.require_staff = require_staff
        self.principal_id = principal_id

    # --- who is acting -------------------------------------------------------------------

    async def current_actor(self, request: Any) -> Any | None:
        from django.conf import settings

        key = request.cookies.get(settings.SESSION_COOKIE_NAME)
        if not key:
            return None
        return await _sync(self.user_for_session)(key)

    def user_for_session(self, session_key: str) -> Any | None:
        """The active user signed in to the session ``session_key``, or None (sync)."""
        from django.conf import settings
        from django.contrib.auth import get_user

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = get_user(_SessionOnly(store))
        return self._usable(user)

    async def actor_for_cli(self, actor_id: str) -> Any | None:
        """``oban-powertools action --actor USERNAME``: that active user, or None."""
        return await _sync(self.user_for_username)(actor_id)

    def user_for_username(self, username: str) -> Any | None:
        from django.contrib.auth import get_user_model

        model = get_user_model()
        try:
            user = model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            return None
        return self._usable(user)

    def _usable(self, user: Any) -> Any | None:
        if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
            return None
        # Loaded here, in the sync thread, so ``authorize`` answers from the user's cache.
        user.get_all_permissions()
        return user

    # --- what they may do ----------------------------------------------------------------

    def permission_for(self, action: str) -> str | None:
        """The Django permission ``action`` needs; None refuses it to everyone."""
        return self.permissions.get(action)

    def has_permission(self, user: Any, action: str) -> bool:
        """The rule itself (sync): see the module's docstring."""
        from django.contrib.auth.models import AbstractBaseUser

        permission = self.permission_for(action)
        if permission is None or not isinstance(user, AbstractBaseUser):
            return False
        if not user.is_active or (self.require_staff and not getattr(user, "is_staff", False)):
            return False
        # A custom user model without PermissionsMixin has no permissions: nothing passes.
        has_perm = getattr(user, "has_perm", None)
        return callable(has_perm) and has_perm(permission) is True

    async def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        if actor is None:
            return False
        answer: bool = await _sync(self.has_permission)(actor, action)
        return answer

    async def authorize_many(
        self, actor: Any, action: str, resources: Sequence[Resource]
    ) -> list[bool]:
        # Django permissions are per action, not per object: one answer for the whole set.
        allowed = await self.authorize(actor, action, resources[0]) if resources else False
        return [allowed] * len(resources)

    # --- how they are audited ------------------------------------------------------------

    def audit_principal(self, actor: Any) -> Principal:
        username = str(actor.get_username())
        stable = username if self.principal_id == "username" else str(actor.pk)
        label = str(actor.get_full_name() or username) if hasattr(actor, "get_full_name") else ""
        return Principal(id=stable, type="user", label=label or username)
