"""The named query files: their format, and that every statement in them is used."""

from __future__ import annotations

import pytest

from oban_powertools.db import queries
from oban_powertools.db.queries import QueryFileError, parse
from tests.support.modules import import_all


def test_a_file_is_read_into_named_statements_with_their_descriptions() -> None:
    found = parse(
        "demo",
        "-- The file's own comment.\n\n"
        "-- name: first\n-- What the first is for,\n-- on two lines.\nSELECT 1;\n\n"
        "-- name: second\nSELECT %(a)s -- a trailing comment stays\nFROM t\n",
    )
    assert list(found) == ["first", "second"]
    assert found["first"].doc == "What the first is for, on two lines."
    assert found["first"].sql == "SELECT 1"
    assert found["second"].sql == "SELECT %(a)s -- a trailing comment stays\nFROM t"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SELECT 1\n-- name: a\nSELECT 2", "SQL before the first '-- name:' line"),
        ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2", "'a' is defined twice"),
        ("-- name: Bad-Name\nSELECT 1", "is not a lower_case name"),
        ("-- name: a\n-- only a comment\n", "query 'a' has no SQL"),
    ],
)
def test_a_malformed_file_is_refused_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(QueryFileError, match=problem):
        parse("demo", text)


def test_asking_for_an_unknown_statement_names_the_file() -> None:
    with pytest.raises(QueryFileError, match=r"db/queries/oban_jobs.sql has no query 'nope'"):
        queries.sql("oban_jobs", "nope")
    with pytest.raises(QueryFileError, match=r"no query file db/queries/nope.sql"):
        queries.sql("nope", "x")


def test_every_statement_in_the_files_is_asked_for_by_some_module() -> None:
    import_all()
    defined = {(f, name) for f in queries.families() for name in queries.family(f)}
    assert defined, "no query files found"
    unused = sorted(defined - queries.asked())
    assert unused == [], f"statements no module uses (delete them): {unused}"


def test_every_statement_says_what_it_is_for() -> None:
    undocumented = [
        f"{f}.{name}"
        for f in queries.families()
        for name, q in queries.family(f).items()
        if not q.doc
    ]
    assert undocumented == []
