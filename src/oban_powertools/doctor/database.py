"""Checks of PostgreSQL: the connection, oban's schema, the library's migrations and the
nodes running against it (leadership and the runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from ..db import connect_kwargs
from ..db import migrate as migrations
from ..db.queries import Statements
from ..runtime import presence
from .check import Check

Q = Statements(
    catalog="server_version oban_tables_present",
    leaders="leases_renewed",
)
OBAN_TABLES = ("oban_jobs", "oban_leaders", "oban_producers")


def shown_url(url: str) -> str:
    """A database URL without its password, for output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def connect_database(
    url: str, prefix: str, connect_timeout: int
) -> tuple[Check, AsyncConnection[DictRow] | None]:
    try:
        conn = await AsyncConnection.connect(
            url, connect_timeout=connect_timeout, **connect_kwargs(prefix)
        )
    except (psycopg.Error, OSError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
        return Check(
            "database",
            "fail",
            f"cannot connect to {shown_url(url)}: {reason}",
            "Start PostgreSQL, or point DATABASE_URL (or --database-url) at a reachable "
            "postgresql:// URL with a user allowed to connect.",
        ), None
    cur = await conn.execute(Q.server_version)
    row = await cur.fetchone()
    version = row["version"].split()[0] if row else "?"
    return Check("database", "ok", f"{shown_url(url)} (PostgreSQL {version})"), conn


async def check_oban_schema(conn: AsyncConnection[DictRow], prefix: str) -> Check:
    cur = await conn.execute(Q.oban_tables_present, {"prefix": prefix, "tables": list(OBAN_TABLES)})
    present = {r["table_name"] for r in await cur.fetchall()}
    if missing := [t for t in OBAN_TABLES if t not in present]:
        return Check(
            "oban_schema",
            "fail",
            f"schema {prefix!r} lacks {', '.join(missing)}",
            f"Run `{migrations.migrate_command(prefix)}`: it installs oban's schema when absent, then "
            "the library's migrations.",
        )
    return Check("oban_schema", "ok", f"{', '.join(OBAN_TABLES)} in schema {prefix!r}")


async def check_migrations(url: str, prefix: str) -> Check:
    statuses = await migrations.status(url, prefix)
    if pending := [s for s in statuses if not s.applied]:
        return Check(
            "migrations",
            "fail",
            migrations.pending_words(pending, len(statuses)),
            f"Run `{migrations.migrate_command(prefix)}` (safe to re-run, and to run from two "
            "processes at once).",
        )
    at = f"{statuses[-1].version:04d} {statuses[-1].name}" if statuses else "none"
    return Check("migrations", "ok", f"current ({len(statuses)} applied, latest {at})")


# What a worker needs to run the runtime, in the two ways workers are started.
RUNTIME_FIX = (
    "Pass **powertools.oban_options() to Oban(...) in every worker process, e.g. "
    "`Oban(pool=pool, queues={...}, **powertools.oban_options())` (for `oban start`, name "
    'the runtime in oban.toml: powertools = "myapp.powertools_config:powertools" under '
    "[scheduler] and [stager]), then restart the workers."
)


async def check_leader(conn: AsyncConnection[DictRow]) -> Check:
    try:
        status = await presence.runtime_status(conn)
    except psycopg.errors.UndefinedTable:
        status = None  # migration 0003 pending (the migrations check says so): oban alone
    window = presence.LIVE_SECONDS
    stopped = _stopped_note(status.stopped) if status else ""
    if status is None or not status.leaders:
        if status is None:
            # Before migration 0003 (no presence table): the leaders alone.
            cur = await conn.execute(Q.leases_renewed, {"window": window})
            if rows := await cur.fetchall():
                shown = ", ".join(f"{r['node']} leads {r['name']!r}" for r in rows)
                return Check("leader", "ok", f"{shown} (lease renewed within the last {window}s)")
        return Check(
            "leader",
            "fail",
            f"no oban node renewed leadership in the last {window}s (oban_leaders), so "
            f"leader-run work such as the cron scheduler is not running{stopped}",
            "Start your worker process: an Oban instance with queues against this database "
            "(leadership is on by default when it has queues), with "
            "**powertools.oban_options().",
        )
    leaders = ", ".join(f"{n.node} leads {n.name!r}" for n in status.leaders)
    if missing := status.without_runtime:
        detail, fix = runtime_missing(missing)
        return Check("leader", "fail", detail + stopped, fix)
    if not status.runtime_running:
        running = ", ".join(n.node for n in status.running)
        return Check(
            "leader",
            "fail",
            f"no node runs the Powertools runtime ({leaders}; running without it: {running}), so "
            "nothing schedules the stored cron entries (the Cron page lists none until a "
            f"node with the runtime starts){stopped}",
            RUNTIME_FIX,
        )
    return Check(
        "leader",
        "ok",
        f"{leaders} with the Powertools runtime (heartbeat within the last {window}s)" + stopped,
    )


def _stopped_note(nodes: Sequence[presence.ObanNode]) -> str:
    """Nodes that stopped are information, not a failure: a restart leaves the old node's
    rows behind until oban cleans them up."""
    if not nodes:
        return ""
    shown = ", ".join(f"{n.node} (no heartbeat for {n.seen_seconds_ago}s)" for n in nodes[:5])
    more = f" and {len(nodes) - 5} more" if len(nodes) > 5 else ""
    return f"; stopped: {shown}{more}"


def runtime_missing(nodes: list[presence.NodeWithoutRuntime]) -> tuple[str, str]:
    """What is wrong, and the fix, when running nodes of an instance that uses the runtime
    run without it."""
    parts = []
    for n in nodes:
        role = "leads" if n.leads else "runs queues of"
        queues = f" ({', '.join(n.queues)})" if n.queues and not n.leads else ""
        parts.append(f"{n.node} {role} {n.name!r}{queues}")
    detail = (
        f"{'; '.join(parts)} without the Powertools runtime. A leader without it runs oban's "
        "own cron scheduler, which ignores the database entries and operators' pauses; a node "
        "without it does not re-apply stored queue decisions when it restarts"
    )
    fix = (
        "Pass **powertools.oban_options() to Oban(...) on every node of that instance "
        "(same name), or name the runtime in oban.toml for `oban start`, then restart those "
        "nodes. A node that has just stopped shows as stopped once its heartbeat is "
        f"{presence.LIVE_SECONDS}s old."
    )
    return detail, fix
