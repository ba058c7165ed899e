"""docs/telemetry.md lists exactly the events the source emits, with their exact fields.

The source is read, not imported (optional extras need not be installed): every
``telemetry.declare("name", measurements=..., metadata=...)`` is an event, every
``telemetry.emit(CONSTANT, ...)`` must name a declared event (in its module or imported
from another), no module but the helper calls oban's ``telemetry.execute`` itself, and
the page has one section per event whose table names each field with its part.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.cli.hostproject import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "oban_powertools"
HELPER = PACKAGE / "telemetry" / "__init__.py"
PAGE = ROOT / "docs" / "telemetry.md"

SECTION = re.compile(r"^### `(oban_powertools\.[\w.]+)`\s*$", re.MULTILINE)
ROW = re.compile(r"^\| `(\w+)` \| (measurement|metadata) \|", re.MULTILINE)


@dataclass(frozen=True)
class Declared:
    name: str
    measurements: tuple[str, ...]
    metadata: tuple[str, ...]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_telemetry_call(node: ast.AST, attr: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attr
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "telemetry"
    )


def literal(node: ast.expr, constants: dict[str, ast.expr]) -> tuple[str, ...]:
    if isinstance(node, ast.Name):
        node = constants[node.id]
    value = ast.literal_eval(node)
    assert isinstance(value, tuple), ast.dump(node)
    return value


@cache
def scan() -> Source:
    return Source()


class Source:
    def __init__(self) -> None:
        self.trees = {
            module_name(path): (path, ast.parse(path.read_text()))
            for path in sorted(PACKAGE.rglob("*.py"))
        }
        # (module, constant) -> the event it declares
        self.declared: dict[tuple[str, str], Declared] = {}
        for module, (_path, tree) in self.trees.items():
            constants = {
                target.id: stmt.value
                for stmt in tree.body
                if isinstance(stmt, ast.Assign)
                for target in stmt.targets
                if isinstance(target, ast.Name)
            }
            for stmt in tree.body:
                if isinstance(stmt, ast.Assign) and is_telemetry_call(stmt.value, "declare"):
                    call = stmt.value
                    assert isinstance(call, ast.Call)
                    name = ast.literal_eval(call.args[0])
                    keywords = {k.arg: k.value for k in call.keywords}
                    event = Declared(
                        name,
                        literal(keywords["measurements"], constants),
                        literal(keywords["metadata"], constants),
                    )
                    for target in stmt.targets:
                        assert isinstance(target, ast.Name)
                        self.declared[(module, target.id)] = event

    def resolve(self, module: str, tree: ast.Module, constant: str) -> Declared | None:
        if (module, constant) in self.declared:
            return self.declared[(module, constant)]
        package = (
            module if self.trees[module][0].name == "__init__.py" else module.rpartition(".")[0]
        )
        for stmt in tree.body:
            if isinstance(stmt, ast.ImportFrom) and any(a.name == constant for a in stmt.names):
                base = package
                for _ in range(stmt.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{stmt.module}" if stmt.level else str(stmt.module)
                return self.declared.get((source, constant))
        return None

    def emitted(self) -> tuple[dict[str, Declared], list[str]]:
        found: dict[str, Declared] = {}
        problems: list[str] = []
        for module, (path, tree) in self.trees.items():
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if is_telemetry_call(node, "execute") and path != HELPER:
                    problems.append(f"{where}: telemetry.execute outside the helper; use emit")
                if not is_telemetry_call(node, "emit"):
                    continue
                first = node.args[0]
                # One constant, or a choice of two (``A if claimed else B``).
                names = [first.body, first.orelse] if isinstance(first, ast.IfExp) else [first]
                for named in names:
                    if not isinstance(named, ast.Name):
                        problems.append(f"{where}: emit's event is not a declared constant")
                        continue
                    event = self.resolve(module, tree, named.id)
                    if event is None:
                        problems.append(f"{where}: {named.id} is not a declared event")
                    else:
                        found[event.name] = event
        return found, problems


def documented() -> dict[str, tuple[set[str], set[str]]]:
    text = PAGE.read_text()
    sections = SECTION.split(text)
    pages: dict[str, tuple[set[str], set[str]]] = {}
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        body = body.split("\n## ", 1)[0]
        rows = ROW.findall(body)
        assert name not in pages, f"{name} has two sections"
        pages[name] = (
            {f for f, part in rows if part == "measurement"},
            {f for f, part in rows if part == "metadata"},
        )
    return pages


def test_every_emit_names_a_declared_event_and_nothing_bypasses_the_helper() -> None:
    _, problems = scan().emitted()
    assert not problems, "\n".join(problems)


def test_every_declared_event_is_emitted() -> None:
    source = scan()
    emitted, _ = source.emitted()
    declared = {event.name for event in source.declared.values()}
    assert declared, "no telemetry.declare found: the scan is broken"
    assert declared - set(emitted) == set(), "declared but never emitted"


def test_every_emitted_event_is_documented_with_its_fields() -> None:
    emitted, _ = scan().emitted()
    pages = documented()
    assert "oban_powertools.limiter.fetch" in emitted  # the scan finds the known ones
    for name, event in sorted(emitted.items()):
        assert name in pages, f"{name} is emitted but has no section in docs/telemetry.md"
        measurements, metadata = pages[name]
        assert measurements == set(event.measurements), f"{name}: measurements differ"
        assert metadata == set(event.metadata), f"{name}: metadata differ"


def test_every_documented_event_is_emitted() -> None:
    emitted, _ = scan().emitted()
    assert set(documented()) - set(emitted) == set(), "documented but nothing emits it"
