"""Mounting the control plane in the host's app module, only where that is unambiguous.

The installer patches a module that assigns ``app = FastAPI(...)`` or ``Starlette(...)``
once at top level and mounts nothing at ``/ops/jobs`` yet: it adds the import, the mount
right after the assignment and, when the app has no start-up hooks of its own, the
lifespan that opens the library's pool. Anything else gets the snippet to add by hand.
The result is re-parsed before it is written; a patch that does not parse is never kept.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

MOUNT_PATH = "/ops/jobs"
APP_CLASSES = frozenset({"FastAPI", "Starlette"})
# Any of these means the host runs its own start-up code; its lifespan is then its to edit.
LIFESPAN_NAMES = frozenset({"lifespan", "on_startup", "on_shutdown", "on_event"})
# Where an app module usually lives, when --app is not given.
APP_FILE_NAMES = ("main.py", "app.py", "asgi.py", "server.py", "api.py", "application.py")


@dataclass(frozen=True, slots=True)
class AppAssignment:
    name: str
    statement: ast.stmt
    call: ast.Call


@dataclass(frozen=True, slots=True)
class MountPlan:
    state: Literal["patch", "present", "manual"]
    detail: str
    text: str | None = None  # the patched module, when state == "patch"
    lifespan: bool = False  # whether the patch wires the lifespan too


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def app_assignments(
    tree: ast.Module, classes: Collection[str] = APP_CLASSES
) -> list[AppAssignment]:
    """Top-level ``name = <one of classes>(...)`` statements (FastAPI and Starlette by
    default; the Litestar wiring asks for ``Litestar``)."""
    found = []
    for statement in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign):
            target, value = statement.target, statement.value
        if (
            isinstance(target, ast.Name)
            and isinstance(value, ast.Call)
            and _call_name(value) in classes
        ):
            found.append(AppAssignment(target.id, statement, value))
    return found


def only_app(apps: list[AppAssignment], wanted: str) -> AppAssignment | MountPlan:
    """The one top-level app assignment, or the manual plan saying why there is not one
    (``wanted`` names what was looked for, e.g. ```app = Litestar(...)```)."""
    if len(apps) == 1:
        return apps[0]
    why = "no top-level" if not apps else "more than one top-level"
    return MountPlan("manual", f"{why} {wanted} found")


def import_line(tree: ast.Module, statement: ast.stmt) -> int:
    """The line after which an import for ``statement`` goes: after the last top-level
    import before it, else right above it."""
    imports = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno < statement.lineno
    ]
    at = imports[-1].end_lineno if imports else statement.lineno - 1
    assert at is not None
    return at


def existing_mount(tree: ast.Module) -> int | None:
    """The line where the control plane is already mounted, or None."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if name == "asgi_app" and isinstance(node.func, ast.Attribute):
            return node.lineno
        if (
            name in ("mount", "Mount")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.rstrip("/") == MOUNT_PATH
        ):
            return node.lineno
    return None


def _host_runs_start_up_code(tree: ast.Module, call: ast.Call) -> bool:
    if any(keyword.arg is None for keyword in call.keywords):  # FastAPI(**settings)
        return True
    for node in ast.walk(tree):
        names: tuple[str | None, ...] = ()
        if isinstance(node, ast.Name):
            names = (node.id,)
        elif isinstance(node, ast.Attribute):
            names = (node.attr,)
        elif isinstance(node, ast.keyword):
            names = (node.arg,)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = (node.name,)
        if any(name in LIFESPAN_NAMES for name in names):
            return True
    return False


def snippet(config_module: str, app_name: str = "app") -> str:
    return (
        f"from {config_module} import powertools, powertools_lifespan\n"
        "\n"
        f"{app_name} = FastAPI(lifespan=powertools_lifespan)"
        "  # or put `async with powertools:` in your own lifespan\n"
        f'{app_name}.mount("{MOUNT_PATH}", powertools.asgi_app())\n'
    )


def _char_col(line: str, byte_col: int) -> int:
    # ast offsets count UTF-8 bytes; string slicing counts characters.
    return len(line.encode("utf-8")[:byte_col].decode("utf-8"))


def plan_mount(source: str, config_module: str, *, lifespan_available: bool = True) -> MountPlan:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return MountPlan("manual", f"it does not parse (line {exc.lineno}: {exc.msg})")
    if (line := existing_mount(tree)) is not None:
        return MountPlan("present", f"already mounts {MOUNT_PATH} (line {line})")
    app = only_app(app_assignments(tree), "`app = FastAPI(...)` or `Starlette(...)`")
    if isinstance(app, MountPlan):
        return app
    statement, call = app.statement, app.call
    assert statement.end_lineno is not None and call.end_lineno is not None
    assert call.end_col_offset is not None
    newline = "\r\n" if "\r\n" in source else "\n"
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    wire_lifespan = lifespan_available and not _host_runs_start_up_code(tree, call)

    # Edits go bottom-up so earlier line numbers stay valid.
    lines.insert(
        statement.end_lineno,
        f"# oban-powertools: the operator control plane (wired in {config_module}){newline}"
        f'{app.name}.mount("{MOUNT_PATH}", powertools.asgi_app()){newline}',
    )
    if wire_lifespan:
        arguments: list[ast.expr | ast.keyword] = [*call.args, *call.keywords]
        if arguments:
            last = max(arguments, key=lambda n: (n.end_lineno or 0, n.end_col_offset or 0))
            assert last.end_lineno is not None and last.end_col_offset is not None
            row, byte_col, text = last.end_lineno, last.end_col_offset, ", lifespan=%s"
        else:
            row, byte_col, text = call.end_lineno, call.end_col_offset - 1, "lifespan=%s"
        original = lines[row - 1]
        col = _char_col(original, byte_col)
        lines[row - 1] = original[:col] + text % "powertools_lifespan" + original[col:]
    imported = "powertools, powertools_lifespan" if wire_lifespan else "powertools"
    at = import_line(tree, statement)
    lines.insert(at, f"from {config_module} import {imported}{newline}")
    patched = "".join(lines)

    try:
        patched_tree = ast.parse(patched)
    except SyntaxError:
        return MountPlan("manual", "an automatic patch would not parse")
    if existing_mount(patched_tree) is None:  # pragma: no cover - defensive
        return MountPlan("manual", "an automatic patch would not mount the control plane")
    detail = f"mounted {MOUNT_PATH} after `{app.name} = ...` (line {statement.lineno})"
    if wire_lifespan:
        detail += "; its lifespan opens the library's pool"
    return MountPlan("patch", detail, patched, wire_lifespan)


def find_app_files(package_dir: Path, project_dir: Path) -> list[Path]:
    """Modules that assign a FastAPI/Starlette app at top level, in the usual places."""
    places = [package_dir / name for name in APP_FILE_NAMES]
    places += [project_dir / name for name in APP_FILE_NAMES]
    found = []
    for path in dict.fromkeys(p.resolve() for p in places):
        if not path.is_file():
            continue
        try:
            source = path.read_text(encoding="utf-8")
            if any(name + "(" in source for name in APP_CLASSES) and app_assignments(
                ast.parse(source)
            ):
                found.append(path)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
    return found
