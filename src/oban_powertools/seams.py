"""The host-owned seams: who is acting, what they may do, and how values are shown.

The host implements these protocols; the library calls them on every page view and every
action, server side. Methods may be plain or ``async``: the library awaits whatever
returns an awaitable, so a host can look actors up in its own database.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

type MaybeAwaitable[V] = V | Awaitable[V]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an audit event is attributed to, as the host wants it recorded."""

    id: str
    type: str
    label: str


# The library's own principals: what it does by itself (an expired pause resumed, later
# lifeline rescues) is recorded as the system's, and a caller the seam knows no actor for
# as anonymous.
SYSTEM_PRINCIPAL = Principal(id="system", type="system", label="oban-powertools")
ANONYMOUS = Principal(id="anonymous", type="anonymous", label="anonymous")


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action or page view is about: ``Resource("cron_entry", "nightly_sync")``.

    ``id`` is None for a page or list that covers a whole family.
    """

    type: str
    id: str | None = None

    def __str__(self) -> str:
        return f"{self.type}:{self.id}" if self.id is not None else self.type


@runtime_checkable
class Auth(Protocol):
    """The host's auth seam. Deny by default: return False whenever unsure.

    Two optional methods extend it (see the comments at the end of the class):
    ``actor_for_cli(actor_id)`` for ``oban-powertools action``, and
    ``authorize_many(actor, action, resources)`` for bulk actions and list pages.
    """

    def current_actor(self, request: Any) -> MaybeAwaitable[Any | None]:
        """The acting user for a request, or None when nobody is signed in."""
        ...

    def authorize(self, actor: Any, action: str, resource: Resource) -> MaybeAwaitable[bool]:
        """Whether ``actor`` may perform ``action`` (a page permission or action name)."""
        ...

    def audit_principal(self, actor: Any) -> MaybeAwaitable[Principal]:
        """How ``actor`` is recorded in the audit log."""
        ...

    # Optional: ``actor_for_cli(actor_id) -> actor | None`` (plain or async) maps the
    # operator id given to ``oban-powertools action ... --actor ID`` to an actor, since the
    # CLI has no request to read one from. ``authorize`` then decides what that actor may
    # do and ``audit_principal`` records it (surface "cli"), as for a page. None refuses;
    # without the method the CLI refuses every action. The starter ops_auth.py has it,
    # returning None (deny by default).
    #
    # Optional: ``authorize_many(actor, action, resources) -> Sequence[bool]`` answers for
    # every target of a bulk action in one call (one answer per resource, in order), so a
    # host that looks permissions up in its database asks once for a set of 100k jobs
    # instead of 100k times. Without it ``authorize`` is asked once per target.


@dataclass(frozen=True, slots=True)
class DisplayContext:
    """Where a value is about to be shown, so a policy can decide per surface."""

    surface: str  # "page", "audit", "forensics", "export", "bridge", "api", "log"
    resource: Resource | None = None
    field: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@runtime_checkable
class DisplayPolicy(Protocol):
    """The host's display policy: redaction and labels for every rendered value.

    Return a string to show instead of the value, or None to render the default.
    """

    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None: ...


AUTH_METHODS = ("current_actor", "authorize", "audit_principal")
DISPLAY_METHODS = ("display",)


async def resolve[T](value: MaybeAwaitable[T]) -> T:
    """Await a seam's result when the host implemented the method as ``async``."""
    if inspect.isawaitable(value):
        return await value
    return value
