"""Which nodes run the Powertools runtime, and who is told when one does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models.overview import overview
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.presence import Presence, nodes_without_runtime
from tests.support.seams import make_powertools
from tests.support.waiting import eventually


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


async def execute(pt: Powertools, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall()) if cur.description else []


async def leader(pt: Powertools, node: str, name: str = "oban") -> None:
    await execute(
        pt,
        "INSERT INTO oban_leaders (name, node, elected_at, expires_at) VALUES (%s, %s, "
        "timezone('UTC', now()), timezone('UTC', now()) + interval '1 second')",
        name,
        node,
    )


async def producer(pt: Powertools, node: str, queue: str, name: str = "oban") -> None:
    await execute(
        pt,
        "INSERT INTO oban_producers (uuid, name, node, queue) VALUES (gen_random_uuid(), %s, "
        "%s, %s)",
        name,
        node,
        queue,
    )


async def test_an_oban_node_with_the_runtime_records_itself(pt: Powertools, db_url: str) -> None:
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as pool:
        oban = Oban(
            pool=pool, name="Billing", node="worker-7", queues={"default": 1},
            **Runtime(pt, declarations=[]).oban_options(),
        )  # fmt: skip
        await oban.start()
        try:
            (row,) = await execute(pt, "SELECT * FROM powertools_runtime_nodes")
        finally:
            await oban.stop()
    assert (row["name"], row["node"]) == ("Billing", "worker-7")
    assert row["version"] and row["seen_at"] >= row["started_at"]


async def test_nodes_without_the_runtime_are_found_leader_first(pt: Powertools) -> None:
    await Presence(lambda: pt.db, name="oban", node="worker-1").record()
    await leader(pt, "worker-2")
    await producer(pt, "worker-1", "default")  # has the runtime
    await producer(pt, "worker-3", "mailers")
    await producer(pt, "worker-3", "default")
    # Another instance name that never ran the runtime is not judged.
    await leader(pt, "solo", name="Reports")
    await producer(pt, "solo", "reports", name="Reports")
    async with pt.db.connection() as conn:
        found = await nodes_without_runtime(conn)
    assert [(n.name, n.node, n.leads, n.queues) for n in found] == [
        ("oban", "worker-2", True, []),
        ("oban", "worker-3", False, ["default", "mailers"]),
    ]


async def test_a_runtime_not_seen_recently_counts_as_missing(pt: Powertools) -> None:
    await Presence(lambda: pt.db, name="oban", node="worker-1").record()
    await leader(pt, "worker-1")
    async with pt.db.connection() as conn:
        assert await nodes_without_runtime(conn) == []
    await execute(pt, "UPDATE powertools_runtime_nodes SET seen_at = now() - interval '5 minutes'")
    async with pt.db.connection() as conn:
        (stale,) = await nodes_without_runtime(conn)
    assert (stale.node, stale.leads) == ("worker-1", True)
    # Rows not renewed for a week are pruned when a node records itself.
    await execute(pt, "UPDATE powertools_runtime_nodes SET seen_at = now() - interval '8 days'")
    await Presence(lambda: pt.db, name="oban", node="worker-9").record()
    nodes = await execute(pt, "SELECT node FROM powertools_runtime_nodes ORDER BY node")
    assert [r["node"] for r in nodes] == ["worker-9"]


async def test_the_overview_says_the_leader_runs_without_the_runtime(pt: Powertools) -> None:
    await Presence(lambda: pt.db, name="oban", node="worker-1").record()
    await leader(pt, "worker-2")
    data = await overview(pt.db, Display(pt.config.display, "page"))
    (item,) = [a for a in data.attention if a.kind == "runtime_missing"]
    assert item.severity == "critical"
    assert item.title == "Node worker-2 leads 'oban' without the Powertools runtime"
    assert "oban's own cron scheduler" in item.why
    assert [p.ownership for p in item.next] == ["host-owned follow-up", "Powertools-native"]


async def test_nothing_is_said_when_every_node_runs_the_runtime(pt: Powertools) -> None:
    await Presence(lambda: pt.db, name="oban", node="worker-1").record()
    await leader(pt, "worker-1")
    await producer(pt, "worker-1", "default")
    data = await overview(pt.db, Display(pt.config.display, "page"))
    assert [a for a in data.attention if a.kind == "runtime_missing"] == []


async def test_the_presence_loop_renews_and_survives_a_failing_write(pt: Powertools) -> None:
    calls = 0

    class Flaky:
        def connection(self) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise psycopg.OperationalError("database restarting")
            return pt.db.connection()

    presence = Presence(lambda: Flaky(), name="oban", node="worker-1", interval=0.05)  # type: ignore[arg-type, return-value]
    await presence.start()
    try:
        # The failed renewal was logged, and the loop went on.
        await eventually(lambda: calls >= 4, within=5, what="renewals after the failed one")
    finally:
        await presence.stop()
    (row,) = await execute(pt, "SELECT node FROM powertools_runtime_nodes")
    assert row["node"] == "worker-1"


async def test_node_and_instance_names_go_through_the_display_policy(pt: Powertools) -> None:
    class Labels:
        def display(self, kind: str, value: Any, context: Any) -> str | None:
            return {"node": "worker #2 (eu-west)", "oban_instance": "Main"}.get(kind)

    await Presence(lambda: pt.db, name="oban", node="worker-1").record()
    await leader(pt, "worker-2")
    data = await overview(pt.db, Display(Labels(), "page"))
    (item,) = [a for a in data.attention if a.kind == "runtime_missing"]
    assert item.title == "Node worker #2 (eu-west) leads 'Main' without the Powertools runtime"
    assert "worker-2" not in item.title + item.why
