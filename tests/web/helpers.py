"""Seams, a host app and seed data for the control plane's tests.

The host is a small Starlette app that mounts the control plane at /ops/jobs, the way a
real host does; the auth seam reads the acting user from an ``x-test-user`` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any

import httpx
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.routing import Mount

from oban_powertools import Config, Powertools, Principal, Resource
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from tests.support.seams import RedactingDisplay

MOUNT = "/ops/jobs"
ORIGIN = "http://testserver"
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
SECRETS = ("hunter2-secret", "nested-secret", "meta-secret", "cron-secret")


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str  # operator (view and act), viewer (view only), guest (nothing)


USERS = {
    u.username: u
    for u in (
        User("ops-demo", "Ops Demo", "operator"),
        User("ops-other", "Ops Other", "operator"),
        User("ops-viewer", "Ops Viewer", "viewer"),
        User("ops-guest", "Ops Guest", "guest"),
    )
}


class HeaderAuth:
    """The host's auth seam for tests: deny by default, operators act, viewers view."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def current_actor(self, request: Any) -> User | None:
        return USERS.get(request.headers.get("x-test-user", ""))

    async def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        # async on purpose: the library must await seams that are coroutines.
        self.calls.append((getattr(actor, "username", "?"), action, str(resource)))
        if not isinstance(actor, User):
            return False
        if actor.role == "operator":
            return True
        if actor.role == "viewer":
            return action in VIEWS
        return False

    def audit_principal(self, actor: Any) -> Principal:
        return Principal(id=actor.username, type="user", label=actor.display_name)


def build_powertools(db_url: str, **overrides: Any) -> Powertools:
    settings: dict[str, Any] = {
        "database_url": db_url,
        "auth": HeaderAuth(),
        "display": RedactingDisplay(),
        "csrf_secret": "test-csrf-secret",
    }
    settings.update(overrides)
    return Powertools(Config(**settings))


def host_app(powertools: Powertools) -> Starlette:
    return Starlette(routes=[Mount(MOUNT, app=powertools.asgi_app())])


def client(app: Starlette, user: str | None = None, **headers: str) -> httpx.AsyncClient:
    default = {"origin": ORIGIN}
    if user:
        default["x-test-user"] = user
    default.update(headers)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=ORIGIN, headers=default
    )


def visible_text(html: str) -> str:
    """The page as a reader sees it: no tags, entities decoded, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL | re.IGNORECASE)
    # Block-level boundaries separate words; inline tags (span, code, a) do not.
    blocks = r"</?(?:td|th|tr|li|div|p|dd|dt|br|h[1-6]|section|table|ul|ol|dl)\b[^>]*>"
    text = re.sub(r"<[^>]+>", "", re.sub(blocks, " ", body, flags=re.IGNORECASE))
    return " ".join(unescape(text).split())


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def token_of(html: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', html)
    assert match, "no preview token in the panel"
    return match.group(1)


async def seed_cron(conn: Any, **overrides: Any) -> None:
    spec: dict[str, Any] = {
        "name": "nightly_sync",
        "worker": "app.NightlySync",
        "expression": "0 2 * * *",
        "queue": "default",
        "args": {"full": False, "password": "cron-secret"},
        "overlap_policy": "skip",
        "catch_up_policy": "latest",
    }
    spec.update(overrides)
    await upsert_entry(conn, CronEntrySpec(**spec))


TRACEBACK = """Traceback (most recent call last):
  File "app/workers.py", line 12, in process
    client.login(user, password='hunter2-secret')
RuntimeError: login failed for {'user': 'ana', 'password': 'nested-secret'}"""


async def insert_job(
    conn: Any,
    *,
    state: str = "available",
    worker: str = "app.SendEmail",
    queue: str = "default",
    args: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    errors: list[dict[str, Any]] | None = None,
    attempt: int = 0,
    max_attempts: int = 20,
    tags: list[str] | None = None,
    attempted_by: list[str] | None = None,
    attempted_ago: timedelta | None = None,
) -> int:
    cur = await conn.execute(
        """
        INSERT INTO oban_jobs (state, queue, worker, args, meta, errors, attempt, max_attempts,
                               tags, attempted_by, attempted_at, discarded_at, completed_at)
        VALUES (%(state)s::oban_job_state, %(queue)s, %(worker)s, %(args)s, %(meta)s,
                %(errors)s, %(attempt)s, %(max_attempts)s, %(tags)s, %(attempted_by)s,
                CASE WHEN %(ago)s::interval IS NULL THEN NULL
                     ELSE timezone('UTC', now()) - %(ago)s::interval END,
                CASE WHEN %(state)s = 'discarded' THEN timezone('UTC', now()) END,
                CASE WHEN %(state)s = 'completed' THEN timezone('UTC', now()) END)
        RETURNING id
        """,
        {
            "state": state,
            "queue": queue,
            "worker": worker,
            "args": Jsonb(args or {}),
            "meta": Jsonb(meta or {}),
            "errors": Jsonb(errors or []),
            "attempt": attempt,
            "max_attempts": max_attempts,
            "tags": tags or [],
            "attempted_by": attempted_by or [],
            "ago": attempted_ago,
        },
    )
    row = await cur.fetchone()
    return int(row["id"])


async def insert_producer(
    conn: Any,
    *,
    queue: str = "default",
    node: str = "worker-1",
    limit: int = 10,
    paused: bool = False,
    age: timedelta = timedelta(seconds=5),
    uuid: str | None = None,
) -> str:
    cur = await conn.execute(
        """
        INSERT INTO oban_producers (uuid, node, queue, meta, updated_at)
        VALUES (coalesce(%(uuid)s::uuid, gen_random_uuid()), %(node)s, %(queue)s, %(meta)s,
                timezone('UTC', now()) - %(age)s::interval)
        RETURNING uuid::text
        """,
        {
            "uuid": uuid,
            "node": node,
            "queue": queue,
            "meta": Jsonb({"local_limit": limit, "paused": paused}),
            "age": age,
        },
    )
    row = await cur.fetchone()
    return str(row["uuid"])


async def scalar(conn: Any, sql: str, params: dict[str, Any] | None = None) -> Any:
    cur = await conn.execute(sql, params or {})
    row = await cur.fetchone()
    return next(iter(row.values())) if row else None


async def seed_lifeline(conn: Any) -> dict[str, Any]:
    """exports: two jobs of a producer silent for 5 minutes (orphaned) and one healthy;
    reports: one job running 2 hours on a live node (stuck)."""
    dead = await insert_producer(
        conn, queue="exports", node="worker-dead", age=timedelta(minutes=5)
    )
    live = await insert_producer(conn, queue="exports", node="worker-1")
    reports = await insert_producer(conn, queue="reports", node="worker-1")
    orphans = [
        await insert_job(
            conn,
            queue="exports",
            state="executing",
            attempt=1,
            attempted_by=["worker-dead", dead],
            attempted_ago=timedelta(minutes=6),
        )
        for _ in range(2)
    ]
    healthy = await insert_job(
        conn,
        queue="exports",
        state="executing",
        attempt=1,
        attempted_by=["worker-1", live],
        attempted_ago=timedelta(seconds=20),
    )
    stuck = await insert_job(
        conn,
        queue="reports",
        state="executing",
        attempt=1,
        attempted_by=["worker-1", reports],
        attempted_ago=timedelta(hours=2),
    )
    return {"orphans": orphans, "healthy": healthy, "stuck": stuck, "dead": dead}
