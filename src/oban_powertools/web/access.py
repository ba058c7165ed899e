"""Who is asking and what they may see or do: the host's auth seam, called on every request.

Every handler starts with :func:`require` (page views) or :func:`require_actor` plus
:func:`check_csrf` (state-changing POSTs). Failures raise, and the app's exception handlers
turn them into a login redirect or 401, a 403 page without data, or a refused form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from starlette.datastructures import FormData
from starlette.requests import Request

from ..display import Display
from ..read_models.principal import ShownPrincipal, shown_actor
from ..seams import Principal, Resource, resolve
from .security import CSRF_FIELD, CSRF_HEADER, Csrf, same_origin

if TYPE_CHECKING:
    from ..powertools import Powertools


class NotSignedIn(Exception):
    """No actor: redirect to the host's login page, or 401."""


class Forbidden(Exception):
    """An actor without the permission: a 403 page that shows no data."""

    def __init__(self, permission: str) -> None:
        self.permission = permission
        super().__init__(permission)


class CsrfRejected(Exception):
    """A state-changing request without a valid token or from another origin."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(why)


class Plane:
    """What the control plane's handlers share: the Powertools, display, CSRF, bridge."""

    def __init__(self, powertools: Powertools) -> None:
        self.powertools = powertools
        config = powertools.config
        self.config = config
        self.display = Display(config.display, "page")
        self.csrf = Csrf(config.csrf_secret)
        self.trusted = config.trusted_origins
        self.bridge_url = config.bridge_url
        self._start_lock = asyncio.Lock()

    @property
    def bridge_configured(self) -> bool:
        return self.bridge_url is not None

    async def ensure_started(self) -> None:
        # Mounted apps get no lifespan events: the first request opens the pool. start() is
        # idempotent; the lock keeps two concurrent first requests from opening it twice.
        async with self._start_lock:
            await self.powertools.start()


def plane_of(request: Request) -> Plane:
    return cast(Plane, request.app.state.plane)


@dataclass(slots=True)
class Viewer:
    """The signed-in actor of one request, with memoised authorization answers."""

    actor: Any
    principal: Principal
    shown: ShownPrincipal  # id and label through the display policy, for the header
    csrf_token: str
    plane: Plane
    _answers: dict[tuple[str, str, str | None], bool] = field(default_factory=dict)

    async def can(self, action: str, resource: Resource) -> bool:
        key = (action, resource.type, resource.id)
        if key not in self._answers:
            answer = await resolve(self.plane.config.auth.authorize(self.actor, action, resource))
            # Only a real True grants: a truthy non-bool from a sloppy seam is a denial.
            self._answers[key] = answer is True
        return self._answers[key]

    async def visible[T](
        self, permission: str, kind: str, items: Sequence[T], key: Callable[[T], str]
    ) -> tuple[list[T], int]:
        """The items of a list page this viewer may view one by one (``permission`` on
        ``Resource(kind, key(item))``), and how many were left out.

        The page itself was allowed for the family; a host that grants views per resource
        must not see rows in a list that the row's own page would refuse. With the seam's
        optional ``authorize_many`` the page asks once; otherwise once per row (memoised).
        """
        resources = [Resource(kind, key(item)) for item in items]
        unknown = [r for r in resources if (permission, r.type, r.id) not in self._answers]
        batch = getattr(self.plane.config.auth, "authorize_many", None)
        if len(unknown) > 1 and callable(batch):
            answers = await resolve(batch(self.actor, permission, unknown))
            # One True per resource, or nothing is shown: a malformed answer denies.
            try:
                valid = len(answers) == len(unknown)
            except TypeError:
                valid = False
            for i, resource in enumerate(unknown):
                granted = valid and answers[i] is True
                self._answers[(permission, resource.type, resource.id)] = granted
        shown = [
            item for item, r in zip(items, resources, strict=True) if await self.can(permission, r)
        ]
        return shown, len(items) - len(shown)

    async def can_any(self, checks: Iterable[tuple[str, Resource]]) -> bool:
        for action, resource in checks:
            if await self.can(action, resource):
                return True
        return False

    async def pausable_controls(
        self, resource: Resource, paused: bool, actions: tuple[str, str, str]
    ) -> dict[str, bool]:
        """Which buttons a pausable row gets, ``actions`` being (pause, resume, other): pause
        while it runs, resume while it is paused (only the one that applies is asked
        about), and its other action. The pipeline checks again on preview."""
        pause, resume, other = actions
        return {
            pause: not paused and await self.can(pause, resource),
            resume: paused and await self.can(resume, resource),
            other: await self.can(other, resource),
        }

    async def read_only(
        self, actions: Sequence[str], resource_type: str, ids: Iterable[str]
    ) -> bool:
        """Whether this viewer may take none of ``actions`` on any listed row (on the type
        itself when the list is empty): a list page then says so up front."""
        resources = [Resource(resource_type, i) for i in ids] or [Resource(resource_type)]
        return not await self.can_any((a, r) for r in resources for a in actions)

    async def sees_bridge(self) -> bool:
        return self.plane.bridge_configured and await self.can(
            "view_oban_web", Resource("oban_web")
        )


async def current_viewer(request: Request) -> Viewer | None:
    plane = plane_of(request)
    await plane.ensure_started()
    actor = await resolve(plane.config.auth.current_actor(request))
    if actor is None:
        return None
    principal = await plane.powertools.pipeline.principal(actor)
    return Viewer(
        actor=actor,
        principal=principal,
        shown=shown_actor(plane.display, principal.id, principal.label),
        csrf_token=plane.csrf.token(principal.id),
        plane=plane,
    )


async def require_actor(request: Request) -> Viewer:
    viewer = await current_viewer(request)
    if viewer is None:
        raise NotSignedIn()
    return viewer


async def require(request: Request, permission: str, resource: Resource) -> Viewer:
    """The signed-in actor, if the host grants ``permission`` on ``resource``."""
    viewer = await require_actor(request)
    if not await viewer.can(permission, resource):
        raise Forbidden(permission)
    return viewer


async def check_csrf(request: Request, form: FormData, viewer: Viewer) -> None:
    plane = viewer.plane
    if not same_origin(request, plane.trusted):
        raise CsrfRejected("the request did not come from a page of this site")
    token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not isinstance(token, str) or not plane.csrf.verify(token, viewer.principal.id):
        raise CsrfRejected("the form's security token is missing, expired or not yours")
