"""The migration runner: numbered SQL files, a version table, an advisory lock.

Each migration is a pair ``NNNN_name.up.sql`` / ``NNNN_name.down.sql`` in
``db/migrations``. Applying runs in one transaction holding a transaction-level advisory
lock, so two concurrent ``migrate`` runs serialize and end in the same state. oban-py's
own schema is installed first when absent, through oban's installer (``install_sql``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import LiteralString

from oban.schema import install_sql

from ..errors import MigrationError
from . import Conn, connect

# hashtext('oban_powertools.migrate') would also do; a fixed key keeps it readable in pg_locks.
LOCK_KEY = 7_305_228_411_992_001
FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$")

CREATE_VERSION_TABLE: LiteralString = """
CREATE TABLE IF NOT EXISTS powertools_schema_versions (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    up: str
    down: str


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


async def _lock(conn: Conn, prefix: str) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    # The schema must exist before oban's installer or ours can create anything in it;
    # the identifier is validated (config.PREFIX_PATTERN) and quoted by psycopg.
    from psycopg import sql

    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(prefix)))
    await conn.execute(CREATE_VERSION_TABLE)


async def _applied(conn: Conn) -> dict[int, datetime]:
    cur = await conn.execute("SELECT version, applied_at FROM powertools_schema_versions")
    return {row["version"]: row["applied_at"] for row in await cur.fetchall()}


async def _oban_installed(conn: Conn) -> bool:
    cur = await conn.execute("SELECT to_regclass('oban_jobs') IS NOT NULL AS present")
    row = await cur.fetchone()
    return bool(row and row["present"])


async def status(database_url: str, prefix: str = "public") -> list[MigrationStatus]:
    conn = await connect(database_url, prefix)
    try:
        cur = await conn.execute(
            "SELECT to_regclass('powertools_schema_versions') IS NOT NULL AS present"
        )
        row = await cur.fetchone()
        applied = await _applied(conn) if row and row["present"] else {}
    finally:
        await conn.close()
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in available()]


async def apply(database_url: str, prefix: str = "public") -> list[Migration]:
    """Install oban's schema if absent, then apply every pending migration. Returns what ran."""
    conn = await connect(database_url, prefix)
    ran: list[Migration] = []
    try:
        async with conn.transaction():
            await _lock(conn, prefix)
            if not await _oban_installed(conn):
                # oban's installer SQL (its own file, with the prefix applied by oban).
                await conn.execute(install_sql(prefix))
            applied = await _applied(conn)
            for migration in available():
                if migration.version in applied:
                    continue
                await conn.execute(migration.up)
                await conn.execute(
                    "INSERT INTO powertools_schema_versions (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                ran.append(migration)
    finally:
        await conn.close()
    return ran


async def rollback(database_url: str, prefix: str = "public") -> Migration | None:
    """Revert the latest applied migration (never oban's own schema). Returns what ran."""
    conn = await connect(database_url, prefix)
    try:
        async with conn.transaction():
            await _lock(conn, prefix)
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
            await conn.execute(migration.down)
            await conn.execute(
                "DELETE FROM powertools_schema_versions WHERE version = %s", (latest,)
            )
            return migration
    finally:
        await conn.close()
