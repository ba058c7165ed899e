"""Every named statement is valid SQL against the migrated schema: PostgreSQL plans it.

Each statement is prepared with its parameters left for PostgreSQL to type, then
EXPLAINed with NULL arguments, so nothing runs. Statements PostgreSQL does not plan are
run instead: settings (``SET LOCAL``) and DDL inside a transaction that is rolled back,
``... CONCURRENTLY`` (which refuses a transaction) on an object that does not exist, and
statements that are an ``EXPLAIN`` themselves (PREPARE refuses them) with NULL arguments.
Identifiers (``{schema}``) are composed as the runner composes them, with names that
touch nothing. A statement planned over JIT's cost threshold on the empty schema fails:
PostgreSQL would compile it with LLVM every time it runs.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from oban_powertools.db import queries

PARAM = re.compile(r"%\((\w+)\)s")
IDENTIFIER = re.compile(r"\{(\w+)\}")
UTILITY = ("SET ", "CREATE ", "DROP ")
EXPLAIN = "EXPLAIN "
# Families whose statements name oban's tables in ``{schema}`` (db.queries.InSchema).
IN_SCHEMA = ("unique", "acks", "workflows", "chains", "batches")
JIT_ABOVE_COST = 100_000  # PostgreSQL's default jit_above_cost
ALL = [(f, name) for f in queries.families() for name in queries.family(f)]


def positional(text: str) -> tuple[str, int]:
    """psycopg's named placeholders as PostgreSQL's $n (one number per name)."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match[1], len(numbers) + 1)}"

    return PARAM.sub(number, text).replace("%%", "%"), len(numbers)


@pytest.mark.parametrize(("family", "name"), ALL, ids=[f"{f}.{n}" for f, n in ALL])
def test_postgresql_plans_the_statement(db_url: str, family: str, name: str) -> None:
    statement = queries.family(family)[name].sql
    if statement.lstrip().upper().startswith(EXPLAIN):
        with psycopg.connect(db_url) as conn:  # plans only: nothing is read
            conn.execute(statement, dict.fromkeys(PARAM.findall(statement)))
            conn.rollback()
        return
    text, count = positional(statement)
    utility = text.lstrip().upper().startswith(UTILITY)
    if utility and IDENTIFIER.search(text):  # only DDL takes identifiers ('{a}' is an array)
        names = {n: sql.Identifier(f"powertools_plan_check_{n}") for n in IDENTIFIER.findall(text)}
        with psycopg.connect(db_url) as conn:
            text = sql.SQL(text).format(**names).as_string(conn)
    elif family in IN_SCHEMA:  # composed with the schema oban's tables are in
        with psycopg.connect(db_url) as conn:
            text = sql.SQL(text).format(schema=sql.Identifier("public")).as_string(conn)
    if utility and " CONCURRENTLY " in text:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(text)
        return
    with psycopg.connect(db_url) as conn:  # one transaction, rolled back
        if utility:
            conn.execute(text)
        else:
            conn.execute(f"PREPARE checked AS {text}")
            args = ", ".join(["NULL"] * count)
            cur = conn.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE checked{f'({args})' if count else ''}"
            )
            row = cur.fetchone()
            assert row is not None
            cost = row[0][0]["Plan"]["Total Cost"]
            # Over JIT's threshold with no rows in any table: an estimate gone wrong (a
            # function planned at the default 1,000 rows), which makes the server compile
            # the statement with LLVM each time it runs (hundreds of ms for a confirm).
            assert cost < JIT_ABOVE_COST, f"{family}.{name} is estimated at {cost:,.0f}"
        conn.rollback()
