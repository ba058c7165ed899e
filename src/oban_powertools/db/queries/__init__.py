"""Named SQL statements, loaded once from the ``.sql`` files beside this module.

Every statement the library runs lives in one of these files, one per table family, as
oban-py and procrastinate keep theirs. Each statement starts with a ``-- name: <name>``
line and a comment saying what it is for; parameters are bound by name (``%(name)s``),
never formatted in. A module declares the statements it runs (:class:`Statements`) and
never builds SQL text, so this module is the one place where file text becomes a statement of type
``LiteralString``, the type psycopg asks of a query. (mypy treats ``LiteralString`` as
``str`` and cannot hold that line; the test that no other module holds SQL text does.)

The test suite loads every statement, has PostgreSQL plan each one against the migrated
schema, and fails on a statement that no module asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, LiteralString

from psycopg.sql import SQL, Composed, Identifier

from ...errors import QueryFileError

NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S+)\s*$")
VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Query:
    family: str
    name: str
    doc: str
    sql: LiteralString


def parse(family: str, text: str) -> dict[str, Query]:
    """The statements of one file: each ``-- name:`` line starts one, the comment lines
    right after it are its description, the rest up to the next name line its text."""
    found: dict[str, Query] = {}
    name: str | None = None
    doc: list[str] = []
    body: list[str] = []

    def close() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip().removesuffix(";").rstrip()
        if not sql:
            raise QueryFileError(f"db/queries/{family}.sql: query {name!r} has no SQL")
        found[name] = Query(family, name, " ".join(doc), sql)

    for number, line in enumerate(text.splitlines(), start=1):
        match = NAME_LINE.match(line)
        if match:
            close()
            name = match["name"]
            if not VALID_NAME.match(name):
                raise QueryFileError(
                    f"db/queries/{family}.sql:{number}: {name!r} is not a lower_case name"
                )
            if name in found:
                raise QueryFileError(f"db/queries/{family}.sql:{number}: {name!r} is defined twice")
            doc, body = [], []
        elif name is None:
            if line.strip() and not line.lstrip().startswith("--"):
                raise QueryFileError(
                    f"db/queries/{family}.sql:{number}: SQL before the first '-- name:' line"
                )
        elif not body and line.lstrip().startswith("--"):
            doc.append(line.lstrip()[2:].strip())
        else:
            body.append(line)
    close()
    return found


@cache
def family(name: str) -> dict[str, Query]:
    """Every statement of ``db/queries/<name>.sql``, parsed once per process."""
    path = resources.files(__package__).joinpath(f"{name}.sql")
    if not path.is_file():
        raise QueryFileError(f"there is no query file db/queries/{name}.sql")
    return parse(name, path.read_text(encoding="utf-8"))


def families() -> list[str]:
    """The names of every query file."""
    return sorted(
        entry.name.removesuffix(".sql")
        for entry in resources.files(__package__).iterdir()
        if entry.name.endswith(".sql")
    )


_asked: set[tuple[str, str]] = set()


def sql(family_name: str, name: str) -> LiteralString:
    """The text of statement ``name`` of ``db/queries/<family_name>.sql``.

    Modules declare what they run in one :class:`Statements`, which asks at import time:
    that is when a typo fails."""
    try:
        query = family(family_name)[name]
    except KeyError:
        raise QueryFileError(f"db/queries/{family_name}.sql has no query {name!r}") from None
    _asked.add((family_name, name))
    return query.sql


def asked() -> frozenset[tuple[str, str]]:
    """(family, name) of every statement some module has asked for in this process."""
    return frozenset(_asked)


class InSchema:
    """A statement naming oban's tables in ``{schema}``, for connections whose
    search_path is not ours (the host's, inside its own transaction). Made at import
    time like :func:`sql`; :meth:`at` composes the schema identifier (quoted by psycopg)."""

    def __init__(self, family_name: str, name: str) -> None:
        self.template = SQL(sql(family_name, name))

    @cache  # noqa: B019 (a handful of module-level statements, each for one or two schemas)
    def at(self, schema: str) -> Composed:
        return self.template.format(schema=Identifier(schema))


class Statements:
    """The statements one module runs, by name: ``Q = Statements(jobs="get_job list_jobs")``
    then ``Q.get_job``. Each family is a query file and each word of its string a statement
    of that file, loaded (and a typo refused) when the module is imported, as :func:`sql`.

    One declaration per module instead of a constant per statement: the statement's name
    in the file is the name the code uses. A test holds each module to its declaration:
    every declared name is used and every name used is declared."""

    def __init__(self, **families: str) -> None:
        for family_name, names in families.items():
            for name in names.split():
                if name in self.__dict__:
                    raise QueryFileError(f"statement {name!r} is declared twice")
                self.__dict__[name] = self._load(family_name, name)

    def _load(self, family_name: str, name: str) -> Any:
        return sql(family_name, name)

    def __getattr__(self, name: str) -> LiteralString:
        # Only reached for a name the declaration does not hold. Private and dunder names
        # are asked by Python's own machinery (copy, inspect) and get its AttributeError.
        raise _undeclared(name)


class StatementsInSchema(Statements):
    """:class:`Statements` whose members are :class:`InSchema` statements (``Q.x.at(schema)``)."""

    def _load(self, family_name: str, name: str) -> Any:
        return InSchema(family_name, name)

    def __getattr__(self, name: str) -> InSchema:  # type: ignore[override]
        raise _undeclared(name)


def _undeclared(name: str) -> Exception:
    if name.startswith("_"):
        return AttributeError(name)
    return QueryFileError(f"statement {name!r} is not in this module's Statements declaration")
