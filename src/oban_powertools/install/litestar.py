"""Wiring the control plane into a Litestar app module: the plugin in ``Litestar(...)``.

Litestar has no ``app.mount``, and a bare ``asgi(is_mount=True)`` handler breaks the
control plane's links, so a Litestar host gets ``plugins=[PowertoolsPlugin(powertools)]``
(:mod:`oban_powertools.contrib.litestar`), which mounts ``/ops/jobs`` and opens the pool
in Litestar's own lifespan: there is no lifespan to leave to the host. The module is
patched only when it assigns ``app = Litestar(...)`` once at top level, wires nothing yet,
and its ``plugins=`` (if any) is a list literal; the result must parse before it is kept.
Anything else gets the snippet to add by hand.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from .mount import (
    APP_FILE_NAMES,
    MOUNT_PATH,
    AppAssignment,
    MountPlan,
    _call_name,
    _char_col,
    app_assignments,
    existing_mount,
    import_line,
    only_app,
)

LITESTAR_CLASS = "Litestar"
PLUGIN = "PowertoolsPlugin"
PLUGIN_MODULE = "oban_powertools.contrib.litestar"


def litestar_assignments(tree: ast.Module) -> list[AppAssignment]:
    """Top-level ``name = Litestar(...)`` statements."""
    return app_assignments(tree, (LITESTAR_CLASS,))


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def imports_litestar(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] == "litestar" for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "litestar":
            return True
    return False


def is_litestar_module(source: str) -> bool:
    """Whether the module builds a Litestar app (rather than a FastAPI or Starlette one)."""
    tree = _parse(source)
    return tree is not None and (bool(litestar_assignments(tree)) or imports_litestar(tree))


def _depends_on_litestar(project_dir: Path) -> bool:
    try:
        data = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    dependencies = data.get("project", {}).get("dependencies", [])
    if not isinstance(dependencies, list):
        return False
    for requirement in dependencies:
        name = str(requirement).split(";")[0].strip()
        for stop in "[<>=!~ ":
            name = name.split(stop)[0]
        if name.lower() == "litestar":
            return True
    return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def uses_litestar(project_dir: Path, package_dir: Path, app_file: Path | None) -> bool:
    """Whether the host is a Litestar app: by its app module, else its usual app files,
    else its declared dependencies. Decides which wiring install writes or prints."""
    if app_file is not None:
        source = _read(app_file)
        return source is not None and is_litestar_module(source)
    places = [package_dir / name for name in APP_FILE_NAMES]
    places += [project_dir / name for name in APP_FILE_NAMES]
    for path in dict.fromkeys(p.resolve() for p in places):
        source = _read(path) if path.is_file() else None
        if source is not None and is_litestar_module(source):
            return True
    return _depends_on_litestar(project_dir)


def find_litestar_app_files(package_dir: Path, project_dir: Path) -> list[Path]:
    """Modules that assign a Litestar app at top level, in the usual places."""
    places = [package_dir / name for name in APP_FILE_NAMES]
    places += [project_dir / name for name in APP_FILE_NAMES]
    found = []
    for path in dict.fromkeys(p.resolve() for p in places):
        source = _read(path) if path.is_file() else None
        if source is None or LITESTAR_CLASS + "(" not in source:
            continue
        tree = _parse(source)
        if tree is not None and litestar_assignments(tree):
            found.append(path)
    return found


def existing_wiring(tree: ast.Module) -> int | None:
    """The line where the control plane is already wired in, or None."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == PLUGIN:
            return node.lineno
    return existing_mount(tree)


def litestar_snippet(config_module: str, app_name: str = "app") -> str:
    return (
        f"from {config_module} import powertools\n"
        f"from {PLUGIN_MODULE} import {PLUGIN}\n"
        "\n"
        f"# {PLUGIN} mounts {MOUNT_PATH} and opens the library's pool with the app.\n"
        f"{app_name} = Litestar(route_handlers=[...], plugins=[{PLUGIN}(powertools)])\n"
    )


def _insertion(call: ast.Call) -> tuple[int, int, str] | str:
    """(row, byte column, text) that adds the plugin to ``call``, or why it cannot."""
    plugin = f"{PLUGIN}(powertools)"
    if any(keyword.arg is None for keyword in call.keywords):  # Litestar(**settings)
        return "`Litestar(**...)` may set plugins= already"
    given = [keyword for keyword in call.keywords if keyword.arg == "plugins"]
    if given:
        plugins = given[0].value
        if not isinstance(plugins, ast.List):
            return "its `plugins=` is not a list literal"
        if plugins.elts:
            last = plugins.elts[-1]
            assert last.end_lineno is not None and last.end_col_offset is not None
            return last.end_lineno, last.end_col_offset, f", {plugin}"
        assert plugins.end_lineno is not None and plugins.end_col_offset is not None
        return plugins.end_lineno, plugins.end_col_offset - 1, plugin
    arguments: list[ast.expr | ast.keyword] = [*call.args, *call.keywords]
    if arguments:
        last_argument = max(arguments, key=lambda n: (n.end_lineno or 0, n.end_col_offset or 0))
        assert last_argument.end_lineno is not None
        assert last_argument.end_col_offset is not None
        row, column = last_argument.end_lineno, last_argument.end_col_offset
        return row, column, f", plugins=[{plugin}]"
    assert call.end_lineno is not None and call.end_col_offset is not None
    return call.end_lineno, call.end_col_offset - 1, f"plugins=[{plugin}]"


def plan_litestar_mount(source: str, config_module: str) -> MountPlan:
    tree = _parse(source)
    if tree is None:
        return MountPlan("manual", "it does not parse")
    if (line := existing_wiring(tree)) is not None:
        return MountPlan("present", f"already wires {MOUNT_PATH} in (line {line})")
    app = only_app(litestar_assignments(tree), "`app = Litestar(...)`")
    if isinstance(app, MountPlan):
        return app
    insertion = _insertion(app.call)
    if isinstance(insertion, str):
        return MountPlan("manual", insertion)
    row, byte_col, text = insertion
    newline = "\r\n" if "\r\n" in source else "\n"
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline

    # Edits go bottom-up so earlier line numbers stay valid.
    original = lines[row - 1]
    col = _char_col(original, byte_col)
    lines[row - 1] = original[:col] + text + original[col:]
    statement = app.statement
    lines.insert(
        statement.lineno - 1,
        f"# oban-powertools: {PLUGIN} mounts the control plane at {MOUNT_PATH} and opens its "
        f"pool (wired in {config_module}){newline}",
    )
    at = import_line(tree, statement)
    lines.insert(
        at,
        f"from {config_module} import powertools{newline}"
        f"from {PLUGIN_MODULE} import {PLUGIN}{newline}",
    )
    patched = "".join(lines)

    patched_tree = _parse(patched)
    if patched_tree is None:
        return MountPlan("manual", "an automatic patch would not parse")
    if existing_wiring(patched_tree) is None:  # pragma: no cover - defensive
        return MountPlan("manual", "an automatic patch would not wire the control plane in")
    detail = (
        f"added {PLUGIN} to `{app.name} = Litestar(...)` (line {statement.lineno}): "
        f"it mounts {MOUNT_PATH} and opens the library's pool with the app"
    )
    return MountPlan("patch", detail, patched, lifespan=True)
