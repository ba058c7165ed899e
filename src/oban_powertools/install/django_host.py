"""The installer's Django flavour: detect a Django project, patch asgi.py and settings.

A Django project is a ``manage.py`` naming ``DJANGO_SETTINGS_MODULE``; its package (the
folder of ``settings.py`` and ``asgi.py``) receives the starters. ``asgi.py`` is patched
only when it assigns ``application = get_asgi_application()`` once at top level, and the
settings only when ``INSTALLED_APPS`` is a plain list or tuple; each patch is re-parsed
before it is written. Anything else gets a snippet to add by hand.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from .mount import MOUNT_PATH, MountPlan, existing_mount

CONTRIB = "oban_powertools.contrib.django"
SETTINGS_MODULE = re.compile(r"""["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")


@dataclass(frozen=True, slots=True)
class DjangoProject:
    settings_module: str  # e.g. "mysite.settings"
    package_dir: Path  # the project package: where settings.py and asgi.py usually live
    settings_file: Path | None
    asgi_file: Path | None


def detect_django(project_dir: Path) -> DjangoProject | None:
    """The Django project in ``project_dir``, from its ``manage.py``; None when not one."""
    manage = project_dir / "manage.py"
    try:
        match = SETTINGS_MODULE.search(manage.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    if match is None:
        return None
    settings_module = match.group(1)
    parts = settings_module.split(".")
    for base in (project_dir, project_dir / "src"):
        package_dir = base / parts[0]
        if (package_dir / "__init__.py").is_file():
            break
    else:
        return None
    module_path = base.joinpath(*parts)
    settings_file = next(
        (p for p in (module_path.with_suffix(".py"), module_path / "__init__.py") if p.is_file()),
        None,
    )
    asgi = package_dir / "asgi.py"
    return DjangoProject(
        settings_module, package_dir, settings_file, asgi if asgi.is_file() else None
    )


def _lines(source: str) -> tuple[list[str], str]:
    newline = "\r\n" if "\r\n" in source else "\n"
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    return lines, newline


def _imports_contrib(tree: ast.Module) -> int | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(CONTRIB):
            return node.lineno
        if isinstance(node, ast.Import) and any(a.name.startswith(CONTRIB) for a in node.names):
            return node.lineno
    return None


def asgi_snippet(config_module: str, name: str = "application") -> str:
    return (
        f"{name} = get_asgi_application()  # first: it sets Django up\n"
        "\n"
        f"from {CONTRIB} import mount\n"
        f"from {config_module} import powertools\n"
        "\n"
        f"{name} = mount({name}, powertools)  # {MOUNT_PATH}, and the lifespan opens its pool\n"
    )


def plan_asgi_mount(source: str, config_module: str) -> MountPlan:
    """Patch asgi.py so ``application`` dispatches /ops/jobs to the control plane."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return MountPlan("manual", f"it does not parse (line {exc.lineno}: {exc.msg})")
    line = _imports_contrib(tree) or existing_mount(tree)
    if line is not None:
        return MountPlan("present", f"already mounts {MOUNT_PATH} (line {line})")
    found = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name | ast.Attribute)
        and (getattr(node.value.func, "id", None) or getattr(node.value.func, "attr", None))
        == "get_asgi_application"
    ]
    if len(found) != 1:
        why = "no top-level" if not found else "more than one top-level"
        return MountPlan("manual", f"{why} `application = get_asgi_application()` found")
    statement = found[0]
    target = statement.targets[0]
    assert isinstance(target, ast.Name) and statement.end_lineno is not None
    name = target.id
    lines, nl = _lines(source)
    # After get_asgi_application(): it sets Django up before the seam's imports run.
    lines.insert(
        statement.end_lineno,
        f"{nl}# oban-powertools: the operator control plane at {MOUNT_PATH} "
        f"(wired in {config_module}){nl}"
        f"from {CONTRIB} import mount  # noqa: E402{nl}"
        f"from {config_module} import powertools  # noqa: E402{nl}"
        f"{nl}"
        f"{name} = mount({name}, powertools){nl}",
    )
    patched = "".join(lines)
    try:
        if _imports_contrib(ast.parse(patched)) is None:  # pragma: no cover - defensive
            return MountPlan("manual", "an automatic patch would not mount the control plane")
    except SyntaxError:
        return MountPlan("manual", "an automatic patch would not parse")
    detail = (
        f"mounted {MOUNT_PATH} after `{name} = get_asgi_application()` (line "
        f"{statement.lineno}); its lifespan opens the library's pool"
    )
    return MountPlan("patch", detail, patched, lifespan=True)


def settings_snippet(config_module: str) -> str:
    return (
        f'INSTALLED_APPS += ["{CONTRIB}"]  # the permissions, and manage.py oban_worker\n'
        "OBAN_POWERTOOLS = {\n"
        f'    "POWERTOOLS": "{config_module}:powertools",\n'
        '    "QUEUES": {"default": 10},\n'
        "}\n"
    )


def plan_settings(source: str, config_module: str) -> MountPlan:
    """Add the contrib app to INSTALLED_APPS and the worker's OBAN_POWERTOOLS setting."""
    if CONTRIB in source:
        return MountPlan("present", f"already lists {CONTRIB}")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return MountPlan("manual", f"it does not parse (line {exc.lineno}: {exc.msg})")
    apps = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "INSTALLED_APPS" for t in node.targets)
    ]
    value = apps[0].value if len(apps) == 1 else None
    if not isinstance(value, ast.List | ast.Tuple) or not value.elts:
        return MountPlan("manual", "no single top-level `INSTALLED_APPS = [...]` list found")
    last = value.elts[-1]
    assert last.end_lineno is not None and last.end_col_offset is not None
    assert value.end_lineno is not None
    lines, nl = _lines(source)
    closing = lines[value.end_lineno - 1].strip()
    if value.end_lineno == last.end_lineno or closing not in ("]", ")"):
        return MountPlan("manual", "INSTALLED_APPS is not one app per line")
    defines_setting = any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "OBAN_POWERTOOLS" for t in node.targets)
        for node in tree.body
    )
    if not defines_setting:
        lines.append(
            f"{nl}# oban-powertools: `python manage.py oban_worker` runs an oban node with its "
            f"runtime.{nl}"
            f"OBAN_POWERTOOLS = {{{nl}"
            f'    "POWERTOOLS": "{config_module}:powertools",{nl}'
            f'    "QUEUES": {{"default": 10}},{nl}'
            f"}}{nl}"
        )
    row = lines[last.end_lineno - 1]
    col = len(row.encode("utf-8")[: last.end_col_offset].decode("utf-8"))
    if not row[col:].lstrip().startswith(","):
        row = row[:col] + "," + row[col:]
    lines[last.end_lineno - 1] = row
    indent = re.match(r"\s*", lines[last.lineno - 1]).group(0)  # type: ignore[union-attr]
    quote = "'" if row[col - 1 : col] == "'" else '"'  # the file's own quote style
    lines.insert(value.end_lineno - 1, f"{indent}{quote}{CONTRIB}{quote},{nl}")
    patched = "".join(lines)
    try:
        ast.parse(patched)
    except SyntaxError:
        return MountPlan("manual", "an automatic patch would not parse")
    what = f"added {CONTRIB} to INSTALLED_APPS"
    if not defines_setting:
        what += " and OBAN_POWERTOOLS for `manage.py oban_worker`"
    return MountPlan("patch", what, patched)
