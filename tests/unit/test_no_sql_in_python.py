"""No Python module under ``src/oban_powertools`` holds SQL text: statements live in
``db/queries/*.sql`` and are loaded by name (``db.queries.sql``).

A string constant counts as a statement when, after leading whitespace and SQL comments,
it starts with an upper-case statement keyword followed by whitespace. The keywords are
matched in upper case only, as every statement of this project is written: prose ("Set
the prefix", "select a queue") and docstrings (which are skipped anyway) do not match.

Nor is SQL glued together in Python: a string constant that is an operand of ``+`` or a
part of an f-string and starts with a statement keyword or a clause (``" WHERE ..."``,
``"EXPLAIN (FORMAT JSON) "``) is a statement being built from pieces.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import oban_powertools

SOURCE = Path(oban_powertools.__file__).parent

STATEMENT = re.compile(
    r"^(?:\s|--[^\n]*\n|/\*.*?\*/)*"
    r"(?:SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|SET|TRUNCATE|EXPLAIN)\s",
    re.DOTALL,
)

# What a piece glued onto a statement starts with: a statement keyword or a clause.
FRAGMENT = re.compile(
    r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|SET|TRUNCATE|EXPLAIN|"
    r"WHERE|AND|OR|FROM|JOIN|LEFT JOIN|ORDER BY|GROUP BY|HAVING|LIMIT|OFFSET|RETURNING|"
    r"VALUES|ON CONFLICT|UNION|FOR UPDATE)(?=[\s(])"
)

# The one place where file text becomes a statement.
LOADER = "db/queries/__init__.py"

# No statement is kept in Python on purpose: the audit and job lists, whose filters are
# optional, are whole named statements too (EXPLAIN showed the same plans as the
# fragments built). A module that must hold SQL for a while goes here, with the reason.
ALLOWED: tuple[str, ...] = (LOADER,)


def allowed(name: str) -> bool:
    return name.startswith(ALLOWED)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of the module, its classes and functions."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def statements_in(path: Path) -> list[int]:
    """Line numbers of the string constants in ``path`` that read as SQL statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _docstrings(tree)
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skipped
        and STATEMENT.match(node.value)
    )


def glued_in(path: Path) -> list[int]:
    """Line numbers where a SQL piece is glued on with ``+`` or into an f-string."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pieces: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            pieces += [node.left, node.right]
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
            pieces.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            pieces += node.values
    return sorted(
        piece.lineno
        for piece in pieces
        if isinstance(piece, ast.Constant)
        and isinstance(piece.value, str)
        and FRAGMENT.match(piece.value)
    )


def _modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(SOURCE).as_posix(), p) for p in sorted(SOURCE.rglob("*.py"))]


def test_the_rule_tells_statements_from_prose() -> None:
    assert STATEMENT.match("\n  -- why\nSELECT 1")
    assert STATEMENT.match("/* a */ UPDATE t SET a = 1")
    assert STATEMENT.match("SELECT ")
    assert not STATEMENT.match("Set the prefix with --prefix")
    assert not STATEMENT.match("select a queue")
    assert not STATEMENT.match("SELECTED")
    assert not STATEMENT.match("UPDATE")  # a bare word (an action name, a label)
    assert STATEMENT.match("EXPLAIN (FORMAT JSON) ")


def test_the_rule_tells_glued_sql_from_prose(tmp_path: Path) -> None:
    module = tmp_path / "glued.py"
    module.write_text(
        'a = "EXPLAIN (FORMAT JSON) " + query\n'
        'b = query + " WHERE id = %(id)s"\n'
        'c = f"SELECT * FROM {table}"\n'
        'd = f"{query} LIMIT 1"\n'
        'e = "Set the prefix " + name\n'
        'f = f"select a queue: {name}"\n'
        'g = label + "UPDATE"\n',
        encoding="utf-8",
    )
    assert glued_in(module) == [1, 2, 3, 4]
    assert statements_in(module) == [1, 3]


def test_no_module_glues_sql_together() -> None:
    found = [
        f"src/oban_powertools/{name}:{line}"
        for name, path in _modules()
        if not allowed(name)
        for line in glued_in(path)
    ]
    assert found == [], "SQL built from pieces with + or an f-string:\n" + "\n".join(found)


def test_no_module_holds_a_sql_statement() -> None:
    found = [
        f"src/oban_powertools/{name}:{line}"
        for name, path in _modules()
        if not allowed(name)
        for line in statements_in(path)
    ]
    assert found == [], "SQL statements outside db/queries/*.sql:\n" + "\n".join(found)


def test_no_module_silences_the_sql_injection_check() -> None:
    found = [
        f"src/oban_powertools/{name}:{number}"
        for name, path in _modules()
        if not allowed(name)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "noqa: S608" in line
    ]
    assert found == [], "noqa: S608 outside the allowlist:\n" + "\n".join(found)


def test_every_allowlist_entry_still_covers_a_module() -> None:
    names = [name for name, _ in _modules()]
    stale = [entry for entry in ALLOWED if not any(n.startswith(entry) for n in names)]
    assert stale == [], f"allowlist entries that match no module (delete them): {stale}"
