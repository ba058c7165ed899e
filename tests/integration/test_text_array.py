"""db.arrays.TextArray: one text[] parameter, the same value as psycopg's own list dumper."""

from __future__ import annotations

from typing import Any

import pytest

from oban_powertools.db.arrays import TextArray

AWKWARD = [
    "plain",
    "NULL",
    "null",
    'a "quote"',
    "back\\slash",
    "com,ma",
    "{braces}",
    "",
    " sp ",
    "ünï",
]


@pytest.mark.parametrize("values", [AWKWARD, [], ["one"], [f"entry_{i}" for i in range(200)]])
async def test_a_text_array_binds_the_same_value_as_a_list(conn: Any, values: list[str]) -> None:
    cur = await conn.execute(
        "SELECT %(ours)s::text[] AS ours, %(ours)s::text[] = %(theirs)s::text[] AS same, "
        "cardinality(%(ours)s::text[]) AS n",
        {"ours": TextArray(values), "theirs": values},
    )
    row = await cur.fetchone()
    assert row == {"ours": values, "same": True, "n": len(values)}


async def test_a_text_array_matches_with_any_without_a_cast(conn: Any) -> None:
    cur = await conn.execute(
        "SELECT v FROM unnest(ARRAY['a', 'NULL', 'c']) AS v WHERE v = ANY(%(names)s) ORDER BY v",
        {"names": TextArray(["NULL", "c", "x"])},
    )
    assert [r["v"] for r in await cur.fetchall()] == ["NULL", "c"]
