"""The migration runner: numbered SQL files, a version table, an advisory lock.

Each migration is a pair ``NNNN_name.up.sql`` / ``NNNN_name.down.sql`` in
``db/migrations``. A run holds a session-level advisory lock from start to end, so two
concurrent ``migrate`` runs serialize and end in the same state. oban-py's own schema is
installed first when absent, through oban's installer (``install_sql``). Each migration
runs in its own transaction together with the row recording it, so a failure leaves
nothing half-applied.

Migrations that cannot run in a transaction
===========================================

``CREATE INDEX CONCURRENTLY`` builds an index without blocking writers (oban's producers
keep fetching and acking while an index on ``oban_jobs`` is built), but PostgreSQL refuses
to run it inside a transaction. A migration file whose text contains the line

    -- powertools: no-transaction

is run outside any transaction, statement by statement, while the run's lock is held; its
version row is written once every statement has succeeded. Such a file must be safe to
run again after a failure part way (``IF NOT EXISTS`` / ``IF EXISTS`` on every statement).
A failed concurrent build leaves an INVALID index behind, which ``IF NOT EXISTS`` would
then keep forever; before each ``CREATE INDEX CONCURRENTLY IF NOT EXISTS name`` the runner
drops an invalid index of that name (``DROP INDEX CONCURRENTLY``), so a re-run builds it
properly.

The lock is taken by polling ``pg_try_advisory_lock`` rather than waiting in
``pg_advisory_lock``: a second runner blocked inside a statement holds a snapshot, and a
concurrent index build waits for every older snapshot to go away, so the two would wait
for each other.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from oban.schema import install_sql
from psycopg import sql as compose

from ..errors import MigrationError
from . import Conn, connect
from .queries import Statements

# hashtext('oban_powertools.migrate') would also do; a fixed key keeps it readable in pg_locks.
LOCK_KEY = 7_305_228_411_992_001
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")
NO_TRANSACTION = re.compile(r"^--\s*powertools:\s*no-transaction\s*$", re.MULTILINE)
CONCURRENT_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\b",
    re.IGNORECASE,
)
LOCK_POLL_SECONDS = 0.1
LOCK_TIMEOUT_SECONDS = 3600.0

Q = Statements(
    schema_versions=(
        "try_lock unlock create_schema create_version_table invalid_index drop_invalid_index"
        " applied_versions oban_installed versions_present schema_present record_version"
        " delete_version"
    ),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up: str
    down: str

    @property
    def up_in_transaction(self) -> bool:
        return not NO_TRANSACTION.search(self.up)

    @property
    def down_in_transaction(self) -> bool:
        return not NO_TRANSACTION.search(self.down)


def split_statements(text: str) -> list[str]:
    """The statements of a SQL file, split at top-level semicolons.

    Quotes ('...', "..."), dollar quotes ($$...$$, $tag$...$tag$) and comments are kept
    whole, so a semicolon inside them does not split. Comment-only pieces are dropped.
    """
    statements: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "'\"":
            end = text.find(ch, i + 1)
            while end >= 0 and text.startswith(ch * 2, end):
                end = text.find(ch, end + 2)  # a doubled quote is an escaped one
            i = n if end < 0 else end + 1
        elif ch == "$" and (tag := re.match(r"\$[A-Za-z_]?[A-Za-z0-9_]*\$", text[i:])):
            end = text.find(tag.group(), i + len(tag.group()))
            i = n if end < 0 else end + len(tag.group())
        elif ch == ";":
            statements.append(text[start:i])
            i += 1
            start = i
        else:
            i += 1
    statements.append(text[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _code(statement: str) -> str:
    """The statement without comments (only to recognise it; it runs as written)."""
    return re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.DOTALL).strip()


def _has_code(statement: str) -> bool:
    return bool(_code(statement))


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def available() -> list[Migration]:
    folder = resources.files("oban_powertools.db") / "migrations"
    found: dict[int, dict[str, str]] = {}
    for entry in folder.iterdir():
        match = FILE_PATTERN.match(entry.name)
        if not match:
            continue
        version, name, direction = int(match[1]), match[2], match[3]
        slot = found.setdefault(version, {"name": name})
        slot[direction] = entry.read_text(encoding="utf-8")
    migrations = []
    for version in sorted(found):
        parts = found[version]
        if "up" not in parts or "down" not in parts:
            raise MigrationError(f"migration {version:04d} lacks its up or down file")
        migrations.append(Migration(version, parts["name"], parts["up"], parts["down"]))
    return migrations


async def _acquire(conn: Conn) -> None:
    """Take the run's session-level advisory lock, polling (see the module docstring)."""
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        cur = await conn.execute(Q.try_lock, {"key": LOCK_KEY})
        row = await cur.fetchone()
        if row and row["locked"]:
            return
        if time.monotonic() > deadline:
            raise MigrationError(
                f"another migration run held the lock for over {LOCK_TIMEOUT_SECONDS:.0f}s"
            )
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def _release(conn: Conn) -> None:
    if not conn.closed:
        await conn.execute(Q.unlock, {"key": LOCK_KEY})


async def _prepare(conn: Conn, prefix: str) -> None:
    # The schema must exist before oban's installer or ours can create anything in it;
    # the identifier is validated (config.PREFIX_PATTERN) and quoted by psycopg.
    await conn.execute(compose.SQL(Q.create_schema).format(schema=compose.Identifier(prefix)))
    await conn.execute(Q.create_version_table)


async def _run_outside_transaction(conn: Conn, text: str) -> None:
    """A no-transaction migration: statement by statement, in autocommit mode."""
    for statement in split_statements(text):
        match = CONCURRENT_INDEX.match(_code(statement))
        if match:
            cur = await conn.execute(Q.invalid_index, {"name": match["name"]})
            if await cur.fetchone() is not None:
                # Left by a failed concurrent build: IF NOT EXISTS would keep it forever.
                await conn.execute(
                    compose.SQL(Q.drop_invalid_index).format(
                        index=compose.Identifier(match["name"])
                    )
                )
        await conn.execute(compose.SQL(statement))


async def _applied(conn: Conn) -> dict[int, datetime]:
    cur = await conn.execute(Q.applied_versions)
    return {row["version"]: row["applied_at"] for row in await cur.fetchall()}


async def _oban_installed(conn: Conn) -> bool:
    cur = await conn.execute(Q.oban_installed)
    row = await cur.fetchone()
    return bool(row and row["present"])


def migrate_command(prefix: str) -> str:
    """The command that brings schema ``prefix`` up to date, as users type it."""
    return "oban-powertools migrate" + ("" if prefix == "public" else f" --prefix {prefix}")


def pending_words(pending: Sequence[MigrationStatus], total: int) -> str:
    """``2 of 3 pending: 0002 scale_indexes, 0003 runtime_nodes``: the wording the
    doctor, the pages' 503 and the start-up warning share."""
    names = ", ".join(f"{s.version:04d} {s.name}" for s in pending)
    return f"{len(pending)} of {total} pending: {names}"


@dataclass(frozen=True, slots=True)
class SchemaProblem:
    """Why the database cannot serve this release: oban's tables, our migrations."""

    prefix: str
    oban_missing: bool
    pending: tuple[MigrationStatus, ...]
    total: int

    @property
    def command(self) -> str:
        return migrate_command(self.prefix)

    def describe(self) -> str:
        parts = []
        if self.oban_missing:
            parts.append("oban's tables are missing")
        if self.pending:
            parts.append(f"migrations {pending_words(self.pending, self.total)}")
        return f"the database schema {self.prefix!r} is not current: " + "; ".join(parts)


async def schema_problem(conn: Conn, prefix: str) -> SchemaProblem | None:
    """What keeps the schema (on ``conn``'s search_path) from being current, or None.
    Reads only."""
    cur = await conn.execute(Q.schema_present)
    row = await cur.fetchone()
    applied = await _applied(conn) if row and row["versions"] else {}
    known = available()
    pending = tuple(
        MigrationStatus(m.version, m.name, None) for m in known if m.version not in applied
    )
    oban_missing = not (row and row["oban"])
    if not pending and not oban_missing:
        return None
    return SchemaProblem(prefix, oban_missing, pending, len(known))


async def status(database_url: str, prefix: str = "public") -> list[MigrationStatus]:
    conn = await connect(database_url, prefix)
    try:
        cur = await conn.execute(Q.versions_present)
        row = await cur.fetchone()
        applied = await _applied(conn) if row and row["present"] else {}
    finally:
        await conn.close()
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in available()]


async def apply(
    database_url: str,
    prefix: str = "public",
    *,
    on_oban_installed: Callable[[], None] | None = None,
) -> list[Migration]:
    """Install oban's schema if absent, then apply every pending migration. Returns what ran.

    ``on_oban_installed`` is called once oban's schema was created (and committed) by this
    run, so a caller can say so; a run that found it in place does not call it.
    """
    conn = await connect(database_url, prefix)
    ran: list[Migration] = []
    try:
        await _acquire(conn)
        try:
            installed_oban = False
            async with conn.transaction():
                await _prepare(conn, prefix)
                if not await _oban_installed(conn):
                    # oban's installer SQL (its own file, with the prefix applied by oban).
                    await conn.execute(install_sql(prefix))
                    installed_oban = True
            if installed_oban and on_oban_installed is not None:
                on_oban_installed()
            applied = await _applied(conn)
            for migration in available():
                if migration.version in applied:
                    continue
                if migration.up_in_transaction:
                    async with conn.transaction():
                        await conn.execute(migration.up)
                        await _record(conn, migration)
                else:
                    await _run_outside_transaction(conn, migration.up)
                    await _record(conn, migration)
                ran.append(migration)
        finally:
            await _release(conn)
    finally:
        await conn.close()
    return ran


async def _record(conn: Conn, migration: Migration) -> None:
    await conn.execute(Q.record_version, {"version": migration.version, "name": migration.name})


async def rollback(database_url: str, prefix: str = "public") -> Migration | None:
    """Revert the latest applied migration (never oban's own schema). Returns what ran."""
    conn = await connect(database_url, prefix)
    try:
        await _acquire(conn)
        try:
            async with conn.transaction():
                await _prepare(conn, prefix)
            applied = await _applied(conn)
            if not applied:
                return None
            latest = max(applied)
            by_version = {m.version: m for m in available()}
            if latest not in by_version:
                raise MigrationError(
                    f"the database is at version {latest}, which this release does not know; "
                    "roll back with the release that applied it"
                )
            migration = by_version[latest]
            if migration.down_in_transaction:
                async with conn.transaction():
                    await conn.execute(migration.down)
                    await conn.execute(Q.delete_version, {"version": latest})
            else:
                await _run_outside_transaction(conn, migration.down)
                await conn.execute(Q.delete_version, {"version": latest})
            return migration
        finally:
            await _release(conn)
    finally:
        await conn.close()
