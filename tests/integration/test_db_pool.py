"""The library's pool: a checkout costs no round trip, and dead connections are replaced."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from oban_powertools.db import Database
from tests.support.waiting import eventually


async def backend_pid(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_backend_pid() AS pid")
        row = await cur.fetchone()
    assert row is not None
    return int(row["pid"])


async def test_healthy_checkouts_are_not_probed_and_a_killed_connection_is_replaced(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    probes = 0
    probe = AsyncConnectionPool.check_connection

    async def counting(conn: psycopg.AsyncConnection[object]) -> None:
        nonlocal probes
        probes += 1
        await probe(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting))
    async with Database(db_url, max_size=1) as db:
        first = await backend_pid(db)
        for _ in range(5):
            assert await backend_pid(db) == first
        assert probes == 0  # an idle connection with nothing to read is handed out as is

        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (first,))

            # The backend has exited, so its goodbye has reached the idle socket.
            async def gone() -> bool:
                cur = await admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,))
                return await cur.fetchone() is None

            await eventually(gone, what=f"backend {first} exits")

        # The next checkout sees the closed socket, probes it, and the pool hands out a
        # fresh connection instead of failing this request.
        replaced = await backend_pid(db)
        assert replaced != first
        assert probes >= 1
