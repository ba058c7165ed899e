"""The workflow list stays cheap at many workflows: each state is one walk of the
(state, inserted_at, id) index, never a scan of the table, on the first page and deeper."""

from __future__ import annotations

import json
import time
from typing import Any

from oban_powertools.db.queries import sql
from oban_powertools.read_models.workflows import WORKFLOW_STATES

LIST = sql("workflow_pages", "list_workflows")
COUNTS = sql("workflow_pages", "workflow_state_counts")


def nodes(plan: dict[str, Any]) -> list[str]:
    found = [plan["Node Type"]]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


async def test_a_page_reads_the_index_only(conn: Any) -> None:
    await conn.execute(
        "INSERT INTO powertools_workflows (id, name, state, steps_total, inserted_at,"
        " finished_at)"
        " SELECT gen_random_uuid(), 'wf' || (i % 50), s.state, 3,"
        " now() - make_interval(secs => i), CASE WHEN s.state IN"
        " ('completed', 'cancelled', 'discarded') THEN now() END"
        " FROM generate_series(1, 40000) i,"
        " LATERAL (SELECT (ARRAY['executing','completed','completed','discarded'])"
        "[1 + i % 4] AS state) s"
    )
    await conn.execute("ANALYZE powertools_workflows")
    cur = await conn.execute(
        "SELECT inserted_at, id FROM powertools_workflows ORDER BY inserted_at DESC LIMIT 1"
        " OFFSET 20000"
    )
    deep = await cur.fetchone()
    for params in (
        {"states": list(WORKFLOW_STATES), "name": None, "before_at": None, "before_id": None},
        {
            "states": ["completed"],
            "name": None,
            "before_at": deep["inserted_at"],
            "before_id": deep["id"],
        },
    ):
        bound = {**params, "limit": 51}
        started = time.perf_counter()
        cur = await conn.execute(LIST, bound)
        rows = await cur.fetchall()
        elapsed = time.perf_counter() - started
        assert len(rows) == 51
        cur = await conn.execute(b"EXPLAIN (FORMAT JSON) " + LIST.encode(), bound)  # type: ignore[arg-type]
        plan = (await cur.fetchone())["QUERY PLAN"]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        kinds = nodes(plan[0]["Plan"])
        assert "Seq Scan" not in kinds, kinds
        assert any("Index" in k for k in kinds), kinds
        assert elapsed < 0.5, elapsed
    cur = await conn.execute(COUNTS, {"states": list(WORKFLOW_STATES), "name": None, "cap": 10_000})
    counts = {r["state"]: r["n"] for r in await cur.fetchall()}
    assert counts["completed"] == 10_001 and counts["executing"] == 10_000
