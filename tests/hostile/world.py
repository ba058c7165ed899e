"""The hostile suite's world: personas, seeded data with recognisable markers, and the
database fingerprint that proves "nothing was written".

Personas are real seam rules, not mocks: the auth seam below is what a host would write,
and the tests judge the control plane by what it asks the seam and how it honours the
answer. Requests name their persona in the ``x-test-user`` header (as in tests/web).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from psycopg import sql

from oban_powertools import Config, Powertools, Principal, Resource
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.web.security import SECURITY_HEADERS, Csrf
from tests.support.seams import RedactingDisplay
from tests.support.workflow_rows import StepSpec
from tests.support.workflow_rows import build as build_workflow
from tests.web.helpers import ORIGIN, insert_job, insert_producer

CSRF_SECRET = "hostile-csrf-secret"
VIEWS = (
    "view_overview",
    "view_cron",
    "view_queues",
    "view_jobs",
    "view_audit",
    "view_forensics",
    "view_oban_web",
    "view_metrics",
)
# What ops-limited may do: one action per family, so every family has both answers.
LIMITED_ACTIONS = frozenset({"run_cron_entry", "resume_queue", "retry_job"})

# Markers: strings that exist only in the seeded data, so finding one in a response means
# data reached it.
WORKER_MARK = "app.MarkerWorker"
ARG_MARK = "arg-marker-5a1f"
META_MARK = "meta-marker-7c2e"
ERROR_MARK = "error-marker-9d4b"
REASON_MARK = "reason-marker-3e8a"
TAG_MARK = "tagmarker"
QUEUE_MARK = "marker_queue"
ENTRY_MARK = "entry_marker"
SECRET = "hunter2-hostile-secret"


@dataclass(frozen=True)
class Persona:
    username: str
    label: str
    views: frozenset[str]
    # None: no action at all; otherwise the allowed action names (every one: all_actions).
    actions: frozenset[str] | None = None
    scoped: bool = False  # actions only on the resources in HostileAuth.scope


ALL_VIEWS = frozenset(VIEWS)
OPERATOR = Persona("ops-demo", "Ops Demo", ALL_VIEWS, frozenset({"*"}))
OTHER_OPERATOR = Persona("ops-other", "Ops Other", ALL_VIEWS, frozenset({"*"}))
VIEWER = Persona("ops-viewer", "Ops Viewer", ALL_VIEWS)
GUEST = Persona("ops-guest", "Ops Guest", frozenset())
LIMITED = Persona("ops-limited", "Ops Limited", ALL_VIEWS, LIMITED_ACTIONS)
SCOPED = Persona("ops-scoped", "Ops Scoped", ALL_VIEWS, frozenset({"*"}), scoped=True)
ONLY_VIEW = {v: Persona(f"only-{v}", f"Only {v}", frozenset({v})) for v in VIEWS}
PERSONAS = {
    p.username: p
    for p in (OPERATOR, OTHER_OPERATOR, VIEWER, GUEST, LIMITED, SCOPED, *ONLY_VIEW.values())
}


class HostileAuth:
    """Deny by default. ``scope`` holds the resources ("queue:x") ops-scoped may act on;
    ``revoked`` users lose every permission (to revoke between preview and confirm);
    ``labels`` overrides audit labels (hostile actor labels)."""

    def __init__(self) -> None:
        self.scope: set[str] = set()
        self.revoked: set[str] = set()
        self.labels: dict[str, str] = {}
        self.calls: list[tuple[str, str, str]] = []

    def current_actor(self, request: Any) -> Persona | None:
        return PERSONAS.get(request.headers.get("x-test-user", ""))

    async def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        self.calls.append((getattr(actor, "username", "?"), action, str(resource)))
        return allowed(actor, action, resource, self.scope, self.revoked)

    def audit_principal(self, actor: Any) -> Principal:
        label = self.labels.get(actor.username, actor.label)
        return Principal(id=actor.username, type="user", label=label)


def allowed(
    actor: Any, action: str, resource: Resource, scope: Iterable[str], revoked: Iterable[str]
) -> bool:
    """The seam's rule, also the matrix's oracle for what each persona may do."""
    if not isinstance(actor, Persona) or actor.username in set(revoked):
        return False
    if action in VIEWS:
        return action in actor.views
    if actor.actions is None or ("*" not in actor.actions and action not in actor.actions):
        return False
    return not actor.scoped or str(resource) in set(scope)


def build(db_url: str, **overrides: Any) -> Powertools:
    settings: dict[str, Any] = {
        "database_url": db_url,
        "auth": HostileAuth(),
        "display": RedactingDisplay(),
        "csrf_secret": CSRF_SECRET,
    }
    settings.update(overrides)
    return Powertools(Config(**settings))


def csrf_for(username: str) -> str:
    return Csrf(CSRF_SECRET).token(username)


def client(app: Any, user: str | None = None, **headers: str) -> httpx.AsyncClient:
    default = {"origin": ORIGIN}
    if user:
        default["x-test-user"] = user
    default.update(headers)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ORIGIN, headers=default
    )


def token_in(html: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, f"no preview token in the response: {html[:400]}"
    return match.group(1)


def assert_security_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (where, name)
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert "frame-ancestors 'none'" in csp, where


@dataclass
class Upstream:
    """The Oban Web stand-in the bridge forwards to (see conftest.upstream)."""

    url: str
    paths: list[str] = field(default_factory=list)


# -- seeded data ------------------------------------------------------------------------


@dataclass
class Seeded:
    jobs: dict[str, int] = field(default_factory=dict)
    event: int = 0  # an audit event by ops-demo, with REASON_MARK as its reason
    workflow: str = ""  # a running workflow whose steps' worker is WORKER_MARK


async def seed_markers(conn: Any) -> Seeded:
    """Data every page has something of, each value carrying a marker."""
    seeded = Seeded()
    await upsert_entry(
        conn,
        CronEntrySpec(
            name="nightly_sync",
            worker=WORKER_MARK,
            expression="0 2 * * *",
            queue=QUEUE_MARK,
            args={"note": ARG_MARK, "password": SECRET},
        ),
    )
    await upsert_entry(
        conn, CronEntrySpec(name=ENTRY_MARK, worker=WORKER_MARK, expression="*/5 * * * *")
    )
    await insert_producer(conn, queue=QUEUE_MARK, node="node-marker")
    seeded.jobs["retryable"] = await insert_job(
        conn,
        state="retryable",
        worker=WORKER_MARK,
        queue=QUEUE_MARK,
        args={"note": ARG_MARK, "password": SECRET},
        meta={"trace": META_MARK},
        errors=[{"attempt": 1, "at": "2030-01-01T00:00:00+00:00", "error": ERROR_MARK}],
        attempt=1,
        tags=[TAG_MARK],
    )
    seeded.jobs["discarded"] = await insert_job(
        conn,
        state="discarded",
        worker=WORKER_MARK,
        queue=QUEUE_MARK,
        args={"note": ARG_MARK},
        errors=[{"attempt": 20, "at": "2030-01-01T00:00:00+00:00", "error": ERROR_MARK}],
        attempt=20,
    )
    cur = await conn.execute(
        "INSERT INTO powertools_audit_events (action, command, resource_type, resource_id, "
        "principal_id, principal_type, principal_label, reason, surface, outcome) VALUES "
        "('cron.paused', 'pause_cron_entry', 'cron_entry', 'nightly_sync', 'ops-demo', 'user', "
        "'Ops Demo', %(reason)s, 'cli', 'succeeded') RETURNING id",
        {"reason": REASON_MARK},
    )
    row = await cur.fetchone()
    seeded.event = int(row["id"])
    seeded.workflow = (await workflow_target(conn, "cancel_workflow")).id
    return seeded


async def workflow_target(conn: Any, action: str) -> Any:
    """A running workflow (to cancel) or a failed one (to retry), its steps' worker
    marked."""
    failed = action == "retry_workflow"
    return await build_workflow(
        conn,
        ENTRY_MARK,
        {
            "first": StepSpec(state="discarded" if failed else "executing", worker=WORKER_MARK),
            "second": StepSpec(
                ("first",),
                "cancelled" if failed else "suspended",
                worker=WORKER_MARK,
                cancelled_by="workflow dependency first discarded" if failed else None,
            ),
        },
    )


MARKERS = (
    WORKER_MARK,
    ARG_MARK,
    META_MARK,
    ERROR_MARK,
    REASON_MARK,
    TAG_MARK,
    QUEUE_MARK,
    ENTRY_MARK,
    "nightly_sync",
    SECRET,
)


def leaked(text: str, *, allow: Iterable[str] = ()) -> list[str]:
    """The markers found in ``text`` (except those the requester sent themselves)."""
    allowed_echo = set(allow)
    return [m for m in MARKERS if m not in allowed_echo and m in text]


# -- targets of each action family, seeded in the state the action applies to ------------

# The state each action needs its target in (what its check accepts).
JOB_STATE_FOR = {
    "retry_job": "discarded",
    "cancel_job": "available",
    "discard_job": "retryable",
    # Orphaned: executing for 10 minutes on a producer that never heartbeated.
    "rescue_jobs": "executing",
    "discard_stuck_jobs": "executing",
}
PARAMS_FOR: dict[str, dict[str, str]] = {
    "pause_cron_entry": {},
    "resume_cron_entry": {},
    "run_cron_entry": {},
    "pause_queue": {},
    "resume_queue": {},
    "scale_queue": {"limit": "7"},
    "set_queue_limits": {"global_limit": "4"},
    "retry_job": {},
    "cancel_job": {},
    "discard_job": {},
    "rescue_jobs": {},
    "discard_stuck_jobs": {},
    "cancel_workflow": {},
    "retry_workflow": {},
    "resume_chain": {},
}


async def seed_target(conn: Any, action: str, resource_type: str, tag: str) -> str:
    """A fresh target for ``action`` (one per persona, so each acts on its own)."""
    if resource_type == "cron_entry":
        name = f"m_{tag}"
        await upsert_entry(
            conn,
            CronEntrySpec(name=name, worker=WORKER_MARK, expression="0 3 * * *", queue="cronq"),
        )
        if action == "resume_cron_entry":
            await conn.execute(
                "UPDATE powertools_cron_entries SET paused = true, paused_at = now(), "
                "paused_by_id = 'seed', "
                "paused_reason = %(r)s, version = version + 1 WHERE name = %(n)s",
                {"n": name, "r": REASON_MARK},
            )
        return name
    if resource_type == "queue":
        name = f"q_{tag}"
        await insert_producer(conn, queue=name, node="node-marker", limit=3)
        if action == "resume_queue":
            await conn.execute(
                "INSERT INTO powertools_queue_states (queue, paused, reason) "
                "VALUES (%(q)s, true, %(r)s)",
                {"q": name, "r": REASON_MARK},
            )
        return name
    if resource_type == "job":
        orphan = JOB_STATE_FOR[action] == "executing"
        job = await insert_job(
            conn,
            state=JOB_STATE_FOR[action],
            worker=WORKER_MARK,
            queue=QUEUE_MARK,
            args={"note": ARG_MARK},
            attempt=1 if JOB_STATE_FOR[action] != "available" else 0,
            attempted_by=["node-gone", str(uuid.uuid4())] if orphan else None,
            attempted_ago=timedelta(minutes=10) if orphan else None,
        )
        return str(job)
    if resource_type == "workflow":
        return str((await workflow_target(conn, action)).id)
    if resource_type == "chain":
        # A chain held at its failed first link, a second link waiting behind it.
        key = f"c_{tag}"
        failed = await insert_job(
            conn,
            state="discarded",
            worker=WORKER_MARK,
            queue=QUEUE_MARK,
            args={"note": ARG_MARK},
            attempt=1,
        )
        waiting = await insert_job(
            conn,
            state="suspended",
            worker=WORKER_MARK,
            queue=QUEUE_MARK,
            args={"note": ARG_MARK},
            attempt=0,
        )
        await conn.execute(
            "INSERT INTO powertools_chains (key, state, head_seq, next_seq) "
            "VALUES (%(k)s, 'held', 1, 2)",
            {"k": key},
        )
        await conn.execute(
            "INSERT INTO powertools_chain_links (chain_key, seq, job_id, outcome, finished_at) "
            "VALUES (%(k)s, 1, %(f)s, 'discarded', now()), (%(k)s, 2, %(w)s, NULL, NULL)",
            {"k": key, "f": failed, "w": waiting},
        )
        return key
    raise KeyError(
        f"no target builder for resource type {resource_type!r}: add one to "
        "tests/hostile/world.py so the matrix covers the new action family"
    )


# -- "nothing written" ------------------------------------------------------------------


async def fingerprint(conn: Any) -> dict[str, str]:
    """A digest of every table's rows; audit events other than security.denied only."""
    cur = await conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
    )
    tables = [r["table_name"] for r in await cur.fetchall()]
    digests: dict[str, str] = {}
    for table in tables:
        where = (
            sql.SQL("WHERE t.action <> 'security.denied'")
            if table == "powertools_audit_events"
            else sql.SQL("")
        )
        query = sql.SQL(
            "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS d "
            "FROM {} t {}"
        ).format(sql.Identifier(table), where)
        row = await (await conn.execute(query)).fetchone()
        digests[table] = row["d"]
    return digests


async def denials(conn: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT principal_id, command, resource_type, resource_id, surface, detail "
        "FROM powertools_audit_events WHERE action = 'security.denied' ORDER BY id"
    )
    return list(await cur.fetchall())


async def succeeded(conn: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT * FROM powertools_audit_events WHERE outcome = 'succeeded' ORDER BY id"
    )
    return list(await cur.fetchall())


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
