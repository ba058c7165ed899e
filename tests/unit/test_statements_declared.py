"""Each module names the statements it runs in one ``Statements`` declaration, and the
declaration says exactly what the module (or a module that borrows it) uses.

``Statements`` loads every declared name when the module is imported, so a name missing
from the query files fails at import; this test holds the other direction: a declared name
that no code reads, and a ``Q.name`` read that the declaration does not hold (which would
fail only when that line runs), are both refused here, from the source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import oban_powertools
from oban_powertools.db.queries import QueryFileError, Statements, StatementsInSchema

SOURCE = Path(oban_powertools.__file__).parent
PACKAGE = "oban_powertools"
KINDS = {"Statements", "StatementsInSchema"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _declarations(tree: ast.Module) -> dict[str, set[str]]:
    """``{variable: declared names}`` of the module's top-level declarations."""
    found: dict[str, set[str]] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in KINDS
        ):
            names: set[str] = set()
            for keyword in node.value.keywords:
                assert isinstance(keyword.value, ast.Constant), ast.unparse(keyword)
                names.update(str(keyword.value.value).split())
            found[node.targets[0].id] = names
    return found


def _imported_modules(tree: ast.Module, module: str, is_package: bool) -> dict[str, str]:
    """Local names bound to one of our modules: ``from ..cron import entries``."""
    package = module if is_package else module.rpartition(".")[0]
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            origin = node.module or ""
            if node.level:
                origin = f"{base}.{origin}" if origin else base
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
    return bound


def _survey() -> tuple[dict[tuple[str, str], set[str]], dict[tuple[str, str], set[str]]]:
    """Declared and used names, each keyed by (module, variable)."""
    declared: dict[tuple[str, str], set[str]] = {}
    used: dict[tuple[str, str], set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if path.is_relative_to(SOURCE / "db" / "queries"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = _module_name(path)
        mine = _declarations(tree)
        for variable, names in mine.items():
            declared[(module, variable)] = names
        bound = _imported_modules(tree, module, path.name == "__init__.py")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in mine:
                used.setdefault((module, owner.id), set()).add(node.attr)
            elif (
                isinstance(owner, ast.Attribute)
                and isinstance(owner.value, ast.Name)
                and owner.value.id in bound
            ):
                used.setdefault((bound[owner.value.id], owner.attr), set()).add(node.attr)
    return declared, {key: names for key, names in used.items() if key in declared}


def test_the_survey_sees_declarations_and_their_uses() -> None:
    declared, used = _survey()
    assert ("oban_powertools.cron.entries", "Q") in declared
    assert "upsert_entry" in declared[("oban_powertools.cron.entries", "Q")]
    # Borrowed by another module: runtime/claims.py reads entries.Q.insert_slot.
    assert "insert_slot" in used[("oban_powertools.cron.entries", "Q")]


def test_every_declared_statement_is_used() -> None:
    declared, used = _survey()
    unused = sorted(
        f"{module}.{variable}.{name}"
        for (module, variable), names in declared.items()
        for name in names - used.get((module, variable), set())
    )
    assert unused == [], f"declared but never read (drop them from the declaration): {unused}"


def test_every_statement_read_is_declared() -> None:
    declared, used = _survey()
    undeclared = sorted(
        f"{module}.{variable}.{name}"
        for (module, variable), names in used.items()
        for name in names - declared[(module, variable)]
    )
    assert undeclared == [], f"read but not declared: {undeclared}"


def test_modules_take_statements_only_through_a_declaration() -> None:
    direct = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.is_relative_to(SOURCE / "db" / "queries"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"sql", "InSchema"}
            ):
                direct.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert direct == [], f"statements taken one by one, not declared: {direct}"


def test_a_declaration_loads_its_statements_and_refuses_what_it_does_not_hold() -> None:
    q = Statements(oban_jobs="state_counts")
    assert q.state_counts.lstrip().upper().startswith(("SELECT", "WITH"))
    with pytest.raises(QueryFileError, match="'list_jobs' is not in this module's Statements"):
        _ = q.list_jobs
    with pytest.raises(AttributeError):
        _ = q.__wrapped__  # Python's own probes get an AttributeError
    with pytest.raises(QueryFileError, match="has no query 'nope'"):
        Statements(oban_jobs="state_counts nope")
    with pytest.raises(QueryFileError, match="'state_counts' is declared twice"):
        Statements(oban_jobs="state_counts state_counts")


def test_an_in_schema_declaration_composes_the_schema() -> None:
    q = StatementsInSchema(unique="insert_jobs")
    assert '"tenant_a".oban_jobs' in q.insert_jobs.at("tenant_a").as_string(None)
