"""The doctor, the overview and the Cron page with real oban nodes: no runtime, a restart,
a node that stopped, a node that runs without the runtime."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from oban import Oban
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.db import connect_kwargs
from oban_powertools.display import Display
from oban_powertools.doctor import Check
from oban_powertools.doctor.database import check_leader
from oban_powertools.read_models import cron as cron_model
from oban_powertools.read_models.overview import overview
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.presence import LIVE_SECONDS
from tests.support.seams import make_powertools
from tests.support.waiting import eventually


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


@asynccontextmanager
async def oban_node(
    pt: Powertools, node: str, *, runtime: bool, queues: dict[str, int] | None = None
) -> AsyncIterator[Oban]:
    """A real oban node with queues (so it takes part in leadership), with or without the
    Powertools runtime; stopped cleanly at the end of the block."""
    options = Runtime(pt, declarations=[]).oban_options() if runtime else {}
    async with AsyncConnectionPool(
        pt.config.database_url, min_size=1, max_size=4, open=False
    ) as pool:
        oban = Oban(pool=pool, node=node, queues=queues or {"default": 1}, **options)
        await oban.start()
        try:
            yield oban
        finally:
            await oban.stop()


async def doctor_leader(pt: Powertools) -> Check:
    conn = await psycopg.AsyncConnection.connect(
        pt.config.database_url, **connect_kwargs(pt.config.prefix)
    )
    try:
        return await check_leader(conn)
    finally:
        await conn.close()


async def attention_kinds(pt: Powertools) -> list[str]:
    data = await overview(pt.db, Display(pt.config.display, "page"))
    return [a.kind for a in data.attention]


async def test_no_node_runs_the_runtime_fails_with_the_fix(pt: Powertools) -> None:
    async with oban_node(pt, "plain-1", runtime=False) as oban:
        await eventually(lambda: oban.is_leader, what="plain-1 leads")
        check = await doctor_leader(pt)
        assert check.status == "fail"
        assert check.detail.startswith("no node runs the Powertools runtime (plain-1 leads 'Oban'")
        assert check.fix is not None
        assert "**powertools.oban_options()" in check.fix and "oban.toml" in check.fix

        data = await overview(pt.db, Display(pt.config.display, "page"))
        (item,) = [a for a in data.attention if a.kind == "runtime_absent"]
        assert item.severity == "critical"
        assert item.title == "No node runs the Powertools runtime"
        assert "Running without it: plain-1." in item.why
        assert "**powertools.oban_options()" in item.next[0].label
        assert item.next[0].ownership == "host-owned follow-up"
        assert await cron_model.runtime_running(pt.db) is False

    async with oban_node(pt, "runtime-1", runtime=True) as oban:
        await eventually(lambda: oban.is_leader, what="runtime-1 leads")
        check = await doctor_leader(pt)
        assert (check.status, check.fix) == ("ok", None), check
        assert check.detail.startswith("runtime-1 leads 'Oban' with the Powertools runtime")
        assert "runtime_absent" not in await attention_kinds(pt)
        assert await cron_model.runtime_running(pt.db) is True


async def test_a_restart_with_the_runtime_passes_at_once(pt: Powertools) -> None:
    async with oban_node(pt, "worker-old", runtime=True) as old:
        await eventually(lambda: old.is_leader, what="the old node leads")
    async with oban_node(pt, "worker-new", runtime=True) as new:
        await eventually(lambda: new.is_leader, what="the new node leads")
        check = await doctor_leader(pt)  # at once: no waiting for the old node to age out
        assert (check.status, check.fix) == ("ok", None), check
        assert "worker-old" not in check.detail
        kinds = await attention_kinds(pt)
        assert "runtime_missing" not in kinds and "runtime_absent" not in kinds


WORKER = """
import asyncio, os
from oban import Oban

async def main():
    pool = await Oban.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=2)
    async with Oban(pool=pool, queues={"default": 1}, node="killed-worker"):
        await asyncio.Event().wait()

asyncio.run(main())
"""


def rows(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


async def test_a_node_that_stopped_is_reported_stopped_not_failing(
    pt: Powertools, tmp_path: Path
) -> None:
    """The previous worker ran without the runtime and was killed (no clean shutdown, so
    oban keeps its rows for a while); the restarted worker runs the runtime."""
    url = pt.config.database_url
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env={**os.environ, "DATABASE_URL": url}
    )
    try:
        await eventually(
            lambda: bool(rows(url, "SELECT 1 FROM oban_producers WHERE node = 'killed-worker'")),
            within=30,
            what="the worker's producer row",
        )
    finally:
        process.kill()  # SIGKILL: no clean shutdown
        await process.wait()
    assert rows(url, "SELECT count(*) AS n FROM oban_producers")[0]["n"] == 1  # left behind
    # The kill was a while ago: the node's last heartbeat is older than oban renews it.
    # (Backdated rather than waited for: the point is the age, not the wait.)
    lapsed = LIVE_SECONDS + 10
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE oban_producers SET updated_at = updated_at - make_interval(secs => %s)",
            (lapsed,),
        )
        conn.execute(
            "UPDATE oban_leaders SET expires_at = expires_at - make_interval(secs => %s)",
            (lapsed,),
        )

    async with oban_node(pt, "worker-new", runtime=True) as new:
        await eventually(lambda: new.is_leader, what="the new node leads")
        check = await doctor_leader(pt)
        assert (check.status, check.fix) == ("ok", None), check
        assert "stopped: killed-worker (no heartbeat for" in check.detail
        kinds = await attention_kinds(pt)
        assert "runtime_missing" not in kinds and "runtime_absent" not in kinds


async def test_a_live_node_without_the_runtime_fails_with_the_fix(pt: Powertools) -> None:
    async with (
        oban_node(pt, "with-runtime", runtime=True) as first,
        oban_node(pt, "without-runtime", runtime=False, queues={"mailers": 1}),
    ):
        await eventually(lambda: first.is_leader, what="the runtime node leads")
        check = await doctor_leader(pt)
        assert check.status == "fail"
        assert check.detail.startswith(
            "without-runtime runs queues of 'Oban' (mailers) without the Powertools runtime"
        )
        assert check.fix is not None and "**powertools.oban_options()" in check.fix
        assert "stopped" not in check.detail
        data = await overview(pt.db, Display(pt.config.display, "page"))
        (item,) = [a for a in data.attention if a.kind == "runtime_missing"]
        assert item.title == "Node without-runtime runs queues without the Powertools runtime"
