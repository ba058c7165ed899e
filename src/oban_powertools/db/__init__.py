"""Connections for the library's own work.

The library keeps a small pool of its own, built from the host's database URL, with
``search_path`` pinned to the configured schema: every query in the package names tables
unqualified and so runs against ``prefix`` for oban's tables and ours alike, without a
``SET`` round trip per transaction and without formatting the schema into SQL text.
"""

from __future__ import annotations

import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

type Conn = AsyncConnection[DictRow]


async def check_idle(conn: Conn) -> None:
    """The pool's check before handing out a connection, without a round trip when it can.

    A healthy idle connection has nothing to read: the library never LISTENs on pooled
    connections, so the server only writes to an idle one when it closes it (a restart, a
    terminated backend: an error message and EOF) or reports a changed setting. Only then
    is the connection probed with an empty query, which raises for a dead one so the pool
    replaces it. Probing every checkout cost one round trip per page and per confirm.
    """
    if conn.closed or conn.broken:
        await AsyncConnectionPool.check_connection(conn)  # raises: the pool replaces it
        return
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


def connect_kwargs(prefix: str) -> dict[str, Any]:
    # prefix is validated against config.PREFIX_PATTERN before it gets here.
    return {"options": f"-c search_path={prefix}", "row_factory": dict_row, "autocommit": True}


class Database:
    """A pool bound to one schema. Open it with ``await db.open()`` or ``async with``."""

    def __init__(
        self,
        database_url: str,
        prefix: str = "public",
        *,
        max_size: int = 5,
        timeout: float = 10.0,
    ) -> None:
        self.database_url = database_url
        self.prefix = prefix
        self.max_size = max_size
        self.timeout = timeout
        self.pool = self._new_pool()
        self._used = False

    def _new_pool(self) -> AsyncConnectionPool[Conn]:
        return AsyncConnectionPool(
            self.database_url,
            min_size=1,
            max_size=self.max_size,
            kwargs=connect_kwargs(self.prefix),
            open=False,
            name="oban-powertools",
            # Bounded waits: with the database down a caller gets PoolTimeout (the pages
            # answer 503) after ``timeout`` seconds instead of psycopg's default 30 s.
            timeout=self.timeout,
            # A pooled connection is checked before it is handed out, so connections broken
            # by a database restart are replaced instead of failing the first requests after
            # it: the pages recover as soon as the database is back.
            check=check_idle,
        )

    def grow(self, max_size: int) -> None:
        """Allow up to ``max_size`` connections (before the pool is opened)."""
        self.max_size = max(self.max_size, max_size)
        if not self._used:
            self.pool = self._new_pool()

    async def open(self) -> None:
        # A closed psycopg pool cannot reopen; hosts whose tests run the app lifespan more
        # than once (one TestClient per test) need a fresh one.
        if self._used:
            self.pool = self._new_pool()
        self._used = True
        await self.pool.open(wait=True, timeout=self.timeout)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A connection in autocommit mode, for single-statement reads."""
        async with self.pool.connection() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        # Not psycopg's pipeline mode: measured here, it made a four-statement transaction
        # slower (0.36 vs 0.27 ms), its syncs costing more than the BEGIN round trip saved.
        async with self.pool.connection() as conn, conn.transaction():
            yield conn


async def connect(database_url: str, prefix: str = "public") -> Conn:
    """One standalone connection (CLI commands, migrations)."""
    return await AsyncConnection.connect(database_url, **connect_kwargs(prefix))
