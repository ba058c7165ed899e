"""The authorization matrix, generated from the app's route table and the action registry.

Every route of ``powertools.asgi_app()`` (bridge included) must have an entry in ROUTES,
and every registered action gets its own test on both mutation surfaces: a route or an
action added without an expectation here fails the suite. Each persona's answer is judged
against the seam's own rule (``world.allowed``), so the matrix proves the control plane
asks for the right permission on the right resource and honours the answer: denied
responses carry no data, and nothing is written except the security.denied evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from oban_powertools import Powertools, Resource
from oban_powertools.actions import all_actions, get_action
from tests.hostile.world import (
    ARG_MARK,
    ENTRY_MARK,
    ERROR_MARK,
    GUEST,
    LIMITED,
    ONLY_VIEW,
    OPERATOR,
    OTHER_OPERATOR,
    PARAMS_FOR,
    PERSONAS,
    REASON_MARK,
    SCOPED,
    VIEWER,
    WORKER_MARK,
    HostileAuth,
    Persona,
    Seeded,
    Upstream,
    allowed,
    assert_security_headers,
    changed,
    client,
    csrf_for,
    denials,
    fingerprint,
    leaked,
    seed_markers,
    seed_target,
    succeeded,
    token_in,
)
from tests.web.helpers import MOUNT, host_app

GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
MOUNTED = frozenset({"MOUNT"})


@dataclass(frozen=True)
class Probe:
    path: str  # placeholders: {retryable} {discarded} (job ids), {event}, {token}, {workflow}
    status: int = 200  # what a persona who may see it gets
    shows: tuple[str, ...] = ()  # markers it shows to those who may see it


@dataclass(frozen=True)
class Page:
    """A page (or export) behind one view permission."""

    permission: str
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class ResultPage:
    """An action's result: its operator, or anyone with view_audit."""

    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class OwnPreview:
    """GET /api/previews/{token}: only the operator who made it; everyone else 404."""

    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class Public:
    """Static assets: no data, the same for everyone."""

    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class Mutation:
    """Covered per action by test_action_matrix below."""

    surface: str
    step: str


Rule = Page | ResultPage | OwnPreview | Public | Mutation

ROUTES: dict[tuple[str, frozenset[str]], Rule] = {
    ("/", GET): Page("view_overview", (Probe("/", shows=(WORKER_MARK,)),)),
    ("/cron", GET): Page("view_cron", (Probe("/cron", shows=(ENTRY_MARK, "nightly_sync")),)),
    ("/cron/{name}", GET): Page(
        "view_cron",
        (
            Probe("/cron/nightly_sync", shows=(WORKER_MARK, ARG_MARK)),
            Probe("/cron/no_such_entry", 404),
        ),
    ),
    ("/queues", GET): Page("view_queues", (Probe("/queues", shows=("marker_queue",)),)),
    ("/queues/{queue}", GET): Page(
        "view_queues",
        (
            Probe("/queues/marker_queue", shows=("marker_queue",)),
            Probe("/queues/no_such_queue", 404),
        ),
    ),
    ("/jobs", GET): Page(
        "view_jobs",
        (
            Probe("/jobs", shows=(WORKER_MARK, ARG_MARK)),
            Probe("/jobs?state=discarded&queue=marker_queue", shows=(WORKER_MARK,)),
        ),
    ),
    ("/jobs/{job_id}", GET): Page(
        "view_jobs",
        (
            Probe("/jobs/{retryable}", shows=(ARG_MARK, ERROR_MARK, "tagmarker")),
            Probe("/jobs/987654321", 404),
        ),
    ),
    ("/workflows", GET): Page(
        "view_jobs",
        (
            Probe("/workflows", shows=(ENTRY_MARK,)),
            Probe("/workflows?state=executing", shows=(ENTRY_MARK,)),
        ),
    ),
    ("/workflows/{workflow_id}", GET): Page(
        "view_jobs",
        (
            Probe("/workflows/{workflow}", shows=(ENTRY_MARK, WORKER_MARK)),
            Probe("/workflows/00000000-0000-4000-8000-000000000000", 404),
        ),
    ),
    ("/chains", GET): Page("view_jobs", (Probe("/chains"), Probe("/chains?state=held"))),
    ("/chains/{key:path}", GET): Page("view_jobs", (Probe("/chains/no-such-chain", 404),)),
    ("/batches", GET): Page("view_jobs", (Probe("/batches"),)),
    ("/batches/{batch_id}", GET): Page(
        "view_jobs",
        (
            Probe("/batches/not-a-batch", 404),
            Probe("/batches/00000000-0000-0000-0000-000000000000", 404),
        ),
    ),
    ("/audit", GET): Page("view_audit", (Probe("/audit", shows=(REASON_MARK,)),)),
    ("/audit/{event_id}", GET): Page(
        "view_audit", (Probe("/audit/{event}", shows=(REASON_MARK,)), Probe("/audit/0", 404))
    ),
    ("/forensics", GET): Page(
        "view_forensics",
        (
            Probe("/forensics", shows=("nightly_sync",)),
            Probe(
                "/forensics?resource_type=cron_entry&resource_id=nightly_sync",
                shows=(REASON_MARK,),
            ),
            Probe("/forensics?resource_type=job&resource_id={retryable}", shows=(ERROR_MARK,)),
            Probe("/forensics?resource_type=queue&resource_id=marker_queue"),
            Probe(
                "/forensics?resource_type=workflow&resource_id={workflow}",
                shows=(ENTRY_MARK,),
            ),
        ),
    ),
    ("/forensics/bundle.json", GET): Page(
        "view_forensics",
        (
            Probe(
                "/forensics/bundle.json?resource_type=cron_entry&resource_id=nightly_sync",
                shows=(REASON_MARK,),
            ),
            Probe(
                "/forensics/bundle.json?resource_type=job&resource_id={retryable}",
                shows=(ERROR_MARK,),
            ),
        ),
    ),
    ("/actions/results/{event_id}", GET): ResultPage(
        (Probe("/actions/results/{event}", shows=(REASON_MARK,)),)
    ),
    ("/actions/preview", POST): Mutation("web", "preview"),
    ("/actions/confirm", POST): Mutation("web", "confirm"),
    ("/api/actions/preview", POST): Mutation("api", "preview"),
    ("/api/actions/confirm", POST): Mutation("api", "confirm"),
    ("/api/previews/{token}", GET): OwnPreview(
        (Probe("/api/previews/{token}"), Probe("/api/previews/no-such-token", 404))
    ),
    ("/api/jobs/{job_id}/explain", GET): Page(
        "view_jobs",
        (
            Probe("/api/jobs/{retryable}/explain", shows=(WORKER_MARK,)),
            Probe("/api/jobs/987654321/explain", 404),
        ),
    ),
    ("/static", MOUNTED): Public(
        (
            Probe("/static/powertools.css"),
            Probe("/static/powertools.js"),
            Probe("/static/htmx.min.js"),
            Probe("/static/no-such-asset.js", 404),
        )
    ),
    ("/metrics", GET): Page("view_metrics", (Probe("/metrics"),)),
    ("/oban", GET): Page("view_oban_web", (Probe("/oban"),)),
    ("/oban/{path:path}", GET): Page(
        "view_oban_web", (Probe("/oban/", shows=(ARG_MARK,)), Probe("/oban/jobs/1"))
    ),
}
BRIDGE_ROUTES = {("/oban", GET), ("/oban/{path:path}", GET)}
# Every persona of the matrix, anonymous included.
WHO: list[Persona | None] = [
    None,
    GUEST,
    VIEWER,
    OPERATOR,
    LIMITED,
    SCOPED,
    *ONLY_VIEW.values(),
]


def route_keys(routes: list[BaseRoute]) -> set[tuple[str, frozenset[str]]]:
    keys: set[tuple[str, frozenset[str]]] = set()
    for route in routes:
        if isinstance(route, Route):
            keys.add((route.path, frozenset(route.methods or {"ANY"})))
        elif isinstance(route, Mount):
            keys.add((route.path, MOUNTED))
        else:  # a route kind the matrix does not know: it cannot match any expectation
            keys.add((repr(route), frozenset()))
    return keys


def app_routes(powertools: Powertools) -> list[BaseRoute]:
    app: Any = powertools.asgi_app()
    return list(app.routes)


async def test_every_route_has_a_matrix_expectation(pt: Powertools, bridged: Powertools) -> None:
    with_bridge = route_keys(app_routes(bridged))
    missing = with_bridge - set(ROUTES)
    assert not missing, f"routes without an authorization expectation in ROUTES: {missing}"
    assert set(ROUTES) - with_bridge == set(), "ROUTES lists routes the app no longer has"
    # Without a configured dashboard the bridge routes do not exist at all.
    assert route_keys(app_routes(pt)) == set(ROUTES) - BRIDGE_ROUTES
    mutation_surfaces = {(r.surface, r.step) for r in ROUTES.values() if isinstance(r, Mutation)}
    assert mutation_surfaces == {(s, step) for s in SURFACES for step in ("preview", "confirm")}


def expected(rule: Rule, probe: Probe, who: Persona | None, owner: str) -> int:
    if isinstance(rule, Public):
        return probe.status
    if who is None:
        return 401
    if isinstance(rule, Page):
        may = allowed(who, rule.permission, Resource("any"), (), ())
        return probe.status if may else 403
    if isinstance(rule, ResultPage):
        may = who.username == owner or allowed(who, "view_audit", Resource("audit"), (), ())
        return probe.status if may else 403
    if isinstance(rule, OwnPreview):
        return probe.status if who.username == owner else 404
    raise AssertionError(f"no page expectation for {rule}")


async def test_page_matrix(bridged: Powertools, upstream: Upstream, conn: Any) -> None:
    seeded: Seeded = await seed_markers(conn)
    app = host_app(bridged)
    async with client(app, OPERATOR.username) as ops:
        made = await ops.post(
            f"{MOUNT}/api/actions/preview",
            json={"action": "run_cron_entry", "targets": ["nightly_sync"]},
        )
        assert made.status_code == 201, made.text
    values = {
        "retryable": seeded.jobs["retryable"],
        "discarded": seeded.jobs["discarded"],
        "event": seeded.event,
        "workflow": seeded.workflow,
        "token": made.json()["token"],
    }
    clients = {
        (who.username if who else None): client(app, who.username if who else None) for who in WHO
    }
    before = await fingerprint(conn)
    denied_before = await denials(conn)
    tried = 0
    try:
        for key, rule in ROUTES.items():
            if isinstance(rule, Mutation):
                continue
            for probe in rule.probes:
                path = MOUNT + probe.path.format(**values)
                for who in WHO:
                    name = who.username if who else None
                    want = expected(rule, probe, who, owner=OPERATOR.username)
                    response = await clients[name].get(path)
                    tried += 1
                    where = (key[0], path, name)
                    assert response.status_code == want, (where, response.text[:300])
                    assert_security_headers(response)
                    if want in (401, 403):
                        assert leaked(response.text) == [], where
                        assert "csrf_token" not in response.text, where
                    if want == 200:
                        missing = [m for m in probe.shows if m not in response.text]
                        assert missing == [], (where, "expected data not shown", missing)
    finally:
        for c in clients.values():
            await c.aclose()
    # Page views write nothing at all, for anyone, and record no denials either.
    assert changed(before, await fingerprint(conn)) == []
    assert await denials(conn) == denied_before
    assert tried >= 250
    assert "/jobs/1" in upstream.paths  # the bridge really forwarded for allowed personas


SURFACES = ("web", "api")
ACTIONS = sorted(action.name for action in all_actions())


async def preview(
    c: httpx.AsyncClient, surface: str, user: str | None, action: str, target: str
) -> tuple[httpx.Response, str | None]:
    params = PARAMS_FOR[action]
    if surface == "web":
        form = {"action": action, "target": target, **{f"param.{k}": v for k, v in params.items()}}
        if user:
            form["csrf_token"] = csrf_for(user)
        response = await c.post(f"{MOUNT}/actions/preview", data=form)
        token = token_in(response.text) if response.status_code == 200 else None
    else:
        response = await c.post(
            f"{MOUNT}/api/actions/preview",
            json={"action": action, "targets": [target], "params": params},
        )
        token = response.json().get("token") if response.status_code == 201 else None
    return response, token


async def confirm(
    c: httpx.AsyncClient, surface: str, user: str | None, token: str
) -> httpx.Response:
    reason = f"matrix confirm by {user}"
    if surface == "web":
        form = {"token": token, "reason": reason}
        if user:
            form["csrf_token"] = csrf_for(user)
        return await c.post(f"{MOUNT}/actions/confirm", data=form)
    return await c.post(f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": reason})


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("action_name", ACTIONS)
async def test_action_matrix(pt: Powertools, conn: Any, action_name: str, surface: str) -> None:
    action = get_action(action_name)
    auth = pt.config.auth
    assert isinstance(auth, HostileAuth)
    await seed_markers(conn)
    targets = {
        who.username: await seed_target(conn, action_name, action.resource_type, tag)
        for who, tag in ((OPERATOR, "ops_demo"), (LIMITED, "ops_limited"), (SCOPED, "ops_scoped"))
    }
    auth.scope = {f"{action.resource_type}:{targets[SCOPED.username]}"}
    app = host_app(pt)
    ok_status = 200 if surface == "web" else 201
    # Who asks, about which target. Denied askers go first and aim at the operator's
    # target, which must come through untouched; the scoped operator asks out of scope
    # and then in scope.
    steps: list[tuple[Persona | None, str]] = [
        (None, targets[OPERATOR.username]),
        (GUEST, targets[OPERATOR.username]),
        (VIEWER, targets[OPERATOR.username]),
        (ONLY_VIEW["view_cron"], targets[OPERATOR.username]),
        (LIMITED, targets[LIMITED.username]),
        (SCOPED, targets[OPERATOR.username]),
        (SCOPED, targets[SCOPED.username]),
        (OPERATOR, targets[OPERATOR.username]),
    ]
    outcomes: list[tuple[str | None, str, str]] = []
    for who, target in steps:
        user = who.username if who else None
        may = who is not None and allowed(
            who, action_name, Resource(action.resource_type, target), auth.scope, ()
        )
        before = await fingerprint(conn)
        denied_before = len(await denials(conn))
        async with client(app, user) as c:
            response, token = await preview(c, surface, user, action_name, target)
            where = (action_name, surface, user, target)
            assert_security_headers(response)
            if who is None:
                assert response.status_code == 401, where
                assert changed(before, await fingerprint(conn)) == [], where
                assert len(await denials(conn)) == denied_before, where
                outcomes.append((user, target, "401"))
                continue
            if not may:
                assert response.status_code == 403, (where, response.text[:300])
                assert leaked(response.text, allow=[target]) == [], where
                assert 'name="token"' not in response.text, where
                assert changed(before, await fingerprint(conn)) == [], where
                new = (await denials(conn))[denied_before:]
                assert [(d["principal_id"], d["command"], d["resource_id"]) for d in new] == [
                    (user, action_name, target)
                ], where
                assert new[0]["surface"] == surface
                outcomes.append((user, target, "403"))
                continue
            assert response.status_code == ok_status, (where, response.text[:300])
            assert token is not None
            assert changed(before, await fingerprint(conn)) == ["powertools_previews"], where

        await others_cannot_confirm(app, conn, surface, token, owner=user)
        if who is SCOPED:
            await revoked_before_confirm(app, conn, auth, surface, token, user, action_name)

        before_events = await succeeded(conn)
        async with client(app, user) as c:
            done = await confirm(c, surface, user, token)
            assert_security_headers(done)
            if surface == "web":
                assert done.status_code == 303, (where, done.text[:300])
                location = done.headers["location"]
                assert location.startswith(f"{MOUNT}/actions/results/")
                result = await c.get(location)
                assert result.status_code == 200
                async with client(app, GUEST.username) as guest:
                    refused = await guest.get(location)
                    assert refused.status_code == 403
                    assert leaked(refused.text) == [] and "matrix confirm" not in refused.text
            else:
                assert done.status_code == 200, (where, done.text[:300])
        (event,) = (await succeeded(conn))[len(before_events) :]
        assert (event["action"], event["command"], event["principal_id"]) == (
            action.event,
            action_name,
            user,
        )
        assert event["resource_id"] == target and event["surface"] == surface
        outcomes.append((user, target, "applied"))

    applied = [o for o in outcomes if o[2] == "applied"]
    expected_applied = 2 + (action_name in (LIMITED.actions or ()))
    assert len(applied) == expected_applied, outcomes


async def others_cannot_confirm(
    app: Any, conn: Any, surface: str, token: str, *, owner: str | None
) -> None:
    """Nobody but the operator who previewed can confirm: anonymous 401, the rest 403."""
    for other in (None, GUEST, VIEWER, OTHER_OPERATOR, *(p for p in (OPERATOR, SCOPED))):
        user = other.username if other else None
        if user == owner:
            continue
        before = await fingerprint(conn)
        async with client(app, user) as c:
            response = await confirm(c, surface, user, token)
        assert response.status_code == (401 if other is None else 403), (user, response.text)
        assert_security_headers(response)
        assert leaked(response.text) == [], user
        assert changed(before, await fingerprint(conn)) == [], user


async def revoked_before_confirm(
    app: Any,
    conn: Any,
    auth: HostileAuth,
    surface: str,
    token: str,
    user: str | None,
    action_name: str,
) -> None:
    """Execute re-authorizes: a permission withdrawn after the preview stops the confirm."""
    assert user is not None
    before = await fingerprint(conn)
    denied_before = len(await denials(conn))
    auth.revoked.add(user)
    try:
        async with client(app, user) as c:
            response = await confirm(c, surface, user, token)
    finally:
        auth.revoked.discard(user)
    assert response.status_code == 403, response.text
    assert changed(before, await fingerprint(conn)) == []
    new = (await denials(conn))[denied_before:]
    assert [(d["principal_id"], d["command"], d["detail"]["stage"]) for d in new] == [
        (user, action_name, "execute")
    ]


def test_every_action_has_a_matrix_target() -> None:
    """A new action needs parameters here (and a target builder for a new family)."""
    missing = [name for name in ACTIONS if name not in PARAMS_FOR]
    assert missing == [], f"add matrix parameters for {missing} in tests/hostile/world.py"
    assert set(PERSONAS) >= {OPERATOR.username, LIMITED.username, SCOPED.username}
