"""The wheel declares exactly what ``src/`` imports: no more, no less.

Read from the source (``ast``), so it runs in the development environment too and names
the offending module; ``test_wheel_install.py`` proves the same in a fresh environment.

* An import at module level, outside ``contrib/`` and outside a guarded ``try``, runs for
  every user: its distribution must be a required dependency.
* ``contrib/<name>.py`` is the glue for one framework: it may import the packages of the
  ``<name>`` extra. A ``try: import x`` guarded by ``except ModuleNotFoundError`` (the
  bridge's client) must be an extra.
* Every required dependency is imported somewhere at module level, or is listed in
  ``INDIRECT`` with the reason it is needed without an import.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "oban_powertools"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Required without an import of their own.
INDIRECT = {
    "python-multipart": "starlette's Request.form() parses the action forms with it",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalize(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])


REQUIRED = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
EXTRAS = {
    extra: {requirement_name(r) for r in requirements}
    for extra, requirements in PYPROJECT["project"]["optional-dependencies"].items()
}
DISTRIBUTIONS = {
    module: {normalize(d) for d in dists}
    for module, dists in importlib.metadata.packages_distributions().items()
}


@dataclass(frozen=True)
class Import:
    module: str  # the top-level name, e.g. "psycopg"
    where: str  # file:line
    kind: str  # "module" | "guarded" | "deferred"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _guards_missing_module(node: ast.Try) -> bool:
    names = {"ModuleNotFoundError", "ImportError"}
    return any(
        isinstance(h.type, ast.Name) and h.type.id in names
        for h in node.handlers
        if h.type is not None
    )


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []
    where = path.relative_to(ROOT)

    def visit(nodes: list[ast.stmt], kind: str) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend(
                    Import(a.name.split(".")[0], f"{where}:{node.lineno}", kind) for a in node.names
                )
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append(Import(node.module.split(".")[0], f"{where}:{node.lineno}", kind))
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue  # never imported at run time
            elif isinstance(node, ast.Try):
                inner = "guarded" if kind == "module" and _guards_missing_module(node) else kind
                visit(node.body, inner)
                for handler in node.handlers:
                    visit(handler.body, kind)
                visit(node.orelse, kind)
                visit(node.finalbody, kind)
            elif isinstance(node, ast.If | ast.For | ast.While):
                visit(node.body, kind)
                visit(node.orelse, kind)
            elif isinstance(node, ast.With):
                visit(node.body, kind)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(node.body, "deferred")

    visit(tree.body, "module")
    return found


def third_party() -> list[Import]:
    return [
        i
        for path in sorted(SRC.rglob("*.py"))
        for i in imports_of(path)
        if i.module not in sys.stdlib_module_names
        and i.module != "oban_powertools"
        and "/install/templates/" not in i.where  # the host's files, copied not imported
    ]


def distributions_of(imported: Import) -> set[str]:
    dists = DISTRIBUTIONS.get(imported.module)
    assert dists, f"{imported.where}: {imported.module!r} comes from no installed distribution"
    return dists


def extra_of(imported: Import) -> str | None:
    """``contrib/<name>.py`` may use the ``<name>`` extra."""
    match = re.search(r"/contrib/(\w+)\.py:", imported.where)
    return match[1] if match else None


def test_module_level_imports_are_required_dependencies() -> None:
    problems = []
    for imported in third_party():
        dists = distributions_of(imported)
        if imported.kind == "module":
            allowed = REQUIRED | EXTRAS.get(extra_of(imported) or "", set())
            if not dists & allowed:
                problems.append(f"{imported.where}: imports {imported.module} ({sorted(dists)})")
    assert not problems, "not a required dependency:\n" + "\n".join(problems)


def test_guarded_and_deferred_imports_are_declared() -> None:
    declared = REQUIRED | set().union(*EXTRAS.values())
    problems = []
    for imported in third_party():
        dists = distributions_of(imported)
        if imported.kind == "guarded" and not dists & (declared - REQUIRED):
            problems.append(f"{imported.where}: guarded {imported.module} is in no extra")
        if imported.kind == "deferred" and not dists & declared:
            problems.append(f"{imported.where}: {imported.module} is not declared")
    assert not problems, "\n".join(problems)


def test_bridge_client_is_the_bridge_extra() -> None:
    guarded = {i.module for i in third_party() if i.kind == "guarded"}
    assert "httpx" in guarded
    assert "httpx" in EXTRAS["bridge"] and "httpx" not in REQUIRED


def test_every_required_dependency_is_used() -> None:
    used = set().union(*(distributions_of(i) for i in third_party() if i.kind == "module"))
    unused = REQUIRED - used - set(INDIRECT)
    assert not unused, f"declared but never imported at module level: {sorted(unused)}"


def test_psycopg_is_not_forced_to_its_binary_build() -> None:
    requirements = PYPROJECT["project"]["dependencies"]
    assert not any(r.replace(" ", "").startswith("psycopg[") for r in requirements)
    assert "psycopg" in REQUIRED
    assert any(
        r.startswith("psycopg[binary]")
        for r in PYPROJECT["project"]["optional-dependencies"]["binary"]
    )
