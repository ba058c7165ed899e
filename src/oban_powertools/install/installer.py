"""``oban-powertools install``: starter seams, config wiring and the mount, never clobbering.

Every file is created once. On later runs a file is left alone, and the report says
whether it is still what install wrote or was edited by the host (told apart by the hash
in the manifest). The app module is patched only through :mod:`.mount`, only once.
"""

from __future__ import annotations

import ast
import difflib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from . import manifest as manifest_file
from .django_host import (
    DjangoProject,
    asgi_snippet,
    detect_django,
    plan_asgi_mount,
    plan_settings,
    settings_snippet,
)
from .layout import HostPackage, InstallError, find_package, relative_to
from .litestar import (
    find_litestar_app_files,
    litestar_assignments,
    litestar_snippet,
    plan_litestar_mount,
    uses_litestar,
)
from .manifest import MANIFEST_NAME, Manifest, content_hash
from .mount import MountPlan, app_assignments, find_app_files, plan_mount, snippet

# Why a host file install patched before is left alone now, by its manifest key.
KEPT = {
    "file": "install mounted /ops/jobs here before; the mount was removed",
    "settings": "install added oban_powertools here before; it was removed",
}
# (file name, what it is) in the order they are reported.
STARTERS = (
    ("ops_auth.py", "starter auth seam: denies everything until you edit it"),
    ("ops_display.py", "starter display policy: redacts nothing until you edit it"),
    ("powertools_config.py", "Config and Powertools built from DATABASE_URL and the seams"),
)
# A Django project gets these instead (file name -> (template, what it is)).
DJANGO_STARTERS = {
    "ops_auth.py": (
        "django_ops_auth.py",
        "starter auth seam: Django users and permissions, deny by default",
    ),
    "powertools_config.py": (
        "django_powertools_config.py",
        "Config and Powertools built from DATABASE_URL, the seams and Django's settings",
    ),
}
CONFIG_MODULE = "powertools_config"
CONFIG_FACTORY = "build_config"


@dataclass(frozen=True, slots=True)
class Step:
    verb: str  # created, unchanged, kept, patched, manual, wrote
    path: str  # relative to the project
    note: str = ""


@dataclass(slots=True)
class InstallReport:
    project_dir: Path
    package: HostPackage
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    snippet: str | None = None  # the mount to add by hand, when install could not
    diffs: list[str] = field(default_factory=list)  # the app patch a dry run would make
    app_target: str | None = None  # e.g. "myapp.main:app", for the next steps
    lifespan_wired: bool = False
    django: DjangoProject | None = None

    @property
    def changed(self) -> bool:
        return any(step.verb in ("created", "patched", "wrote") for step in self.steps)

    @property
    def config_path(self) -> str:
        return f"{self.package.module}.{CONFIG_MODULE}:{CONFIG_FACTORY}"


def template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


def _write_new(path: Path, text: str) -> None:
    # "x" refuses to replace a file that appeared meanwhile: install never overwrites.
    with path.open("x", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.oban-powertools-tmp")
    with temporary.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    if path.exists():
        shutil.copymode(path, temporary)
    os.replace(temporary, path)


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines at top level (what the mount may import from it)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )


def _starter(
    report: InstallReport,
    recorded: Manifest | None,
    new: Manifest,
    name: str,
    what: str,
    source: str | None = None,
) -> None:
    path = report.package.path / name
    shown = relative_to(report.project_dir, path)
    text = template(source or name)
    wanted = content_hash(text)
    previous = recorded.files.get(shown) if recorded else None
    if not path.exists() and previous is not None:
        # Deleting a starter is an edit too: the host moved or dropped it on purpose.
        new.files[shown] = previous
        report.steps.append(
            Step(
                "kept",
                shown,
                f"deleted since install: not recreated (drop its line in {MANIFEST_NAME} "
                "for a fresh starter)",
            )
        )
        return
    if not path.exists():
        if not report.dry_run:
            _write_new(path, text)
        new.files[shown] = wanted
        report.steps.append(Step("created", shown, what))
        return
    current = content_hash(path.read_text(encoding="utf-8"))
    if current == wanted:
        new.files[shown] = wanted
        report.steps.append(Step("unchanged", shown, "as install wrote it"))
    elif previous == current:
        new.files[shown] = previous
        report.steps.append(
            Step("kept", shown, "as an earlier install wrote it; this version's starter differs")
        )
    elif previous is not None:
        new.files[shown] = previous
        report.steps.append(Step("kept", shown, "edited since install: not overwritten"))
    else:
        report.steps.append(Step("kept", shown, "not written by install: not overwritten"))


def _find_app(project_dir: Path, package: HostPackage, app: str | None) -> Path | None:
    if app is not None:
        path = (project_dir / app).resolve()
        if not path.is_file():
            raise InstallError(f"--app {app}: no such file in {project_dir}")
        return path
    found = [
        *find_app_files(package.path, project_dir),
        *find_litestar_app_files(package.path, project_dir),
    ]
    return found[0] if len(found) == 1 else None


def _mount(
    report: InstallReport, recorded: Manifest | None, new: Manifest, app_file: Path | None
) -> None:
    config_module = f"{report.package.module}.{CONFIG_MODULE}"
    litestar = uses_litestar(report.project_dir, report.package.path, app_file)
    host_snippet = litestar_snippet if litestar else snippet
    if app_file is None:
        report.steps.append(
            Step("manual", "-", "no app module found to mount in (pass --app PATH to patch one)")
        )
        report.snippet = host_snippet(config_module)
        return
    shown = relative_to(report.project_dir, app_file)
    module = report.package.module_of(app_file)
    try:
        source = app_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstallError(f"cannot read {shown}: {exc}") from exc
    config_file = report.package.path / f"{CONFIG_MODULE}.py"
    provided = (
        _top_level_names(config_file)
        if config_file.exists()
        else {"powertools", "powertools_lifespan"}  # the starter, about to be written
    )
    plan: MountPlan = (
        plan_litestar_mount(source, config_module)
        if litestar
        else plan_mount(source, config_module, lifespan_available="powertools_lifespan" in provided)
    )
    if recorded is not None and recorded.mount.get("file") == shown:
        new.mount = dict(recorded.mount)
    if plan.state != "present" and "powertools" not in provided:
        plan = MountPlan(
            "manual",
            f"{relative_to(report.project_dir, config_file)} defines no `powertools` to mount",
        )
    outcome = _apply_plan(report, new, "file", app_file, shown, source, plan)
    if outcome == "unchanged":
        report.app_target = _target(module, source)
    elif outcome == "patched":
        assert plan.text is not None
        new.mount = {"file": shown, "state": "applied"}
        report.lifespan_wired = plan.lifespan
        report.app_target = _target(module, plan.text)
    else:
        report.snippet = host_snippet(config_module)


def _mount_django(
    report: InstallReport, recorded: Manifest | None, new: Manifest, asgi_file: Path | None
) -> None:
    """asgi.py dispatches /ops/jobs to the control plane; settings list the contrib app."""
    assert report.django is not None
    config_module = f"{report.package.module}.{CONFIG_MODULE}"
    snippets: list[str] = []
    before = dict(recorded.mount) if recorded is not None else {}
    if asgi_file is None:
        report.steps.append(Step("manual", "-", "no asgi.py in the project package (pass --app)"))
        snippets.append(asgi_snippet(config_module))
    else:
        shown, source, plan = _read_plan(report, asgi_file, plan_asgi_mount, config_module)
        module = report.package.module_of(asgi_file)
        report.app_target = f"{module}:application" if module else None
        if before.get("file") == shown:
            new.mount["file"], new.mount["state"] = shown, before.get("state", "applied")
        outcome = _apply_plan(report, new, "file", asgi_file, shown, source, plan)
        if outcome == "patched":
            new.mount.update(file=shown, state="applied")
            report.lifespan_wired = True
        elif outcome != "unchanged":
            snippets.append(asgi_snippet(config_module))
    settings_file = report.django.settings_file
    if settings_file is None:
        report.steps.append(Step("manual", "-", "settings module not found"))
        snippets.append(settings_snippet(config_module))
    else:
        shown, source, plan = _read_plan(report, settings_file, plan_settings, config_module)
        if before.get("settings") == shown:
            new.mount["settings"] = shown
        outcome = _apply_plan(report, new, "settings", settings_file, shown, source, plan)
        if outcome == "patched":
            new.mount["settings"] = shown
        elif outcome == "manual":
            snippets.append(settings_snippet(config_module))
    if snippets:
        report.snippet = "\n".join(snippets)


def _read_plan(
    report: InstallReport,
    path: Path,
    plan_of: Callable[[str, str], MountPlan],
    config_module: str,
) -> tuple[str, str, MountPlan]:
    """One Django host file as shown in the report, its text, and the plan to patch it."""
    source = path.read_text(encoding="utf-8")
    return relative_to(report.project_dir, path), source, plan_of(source, config_module)


def _apply_plan(
    report: InstallReport,
    new: Manifest,
    key: str,
    path: Path,
    shown: str,
    source: str,
    plan: MountPlan,
) -> Literal["unchanged", "kept", "manual", "patched"]:
    """Patch one host file by its plan and record the step; the caller does the rest.

    A file the manifest already holds under ``key`` that needs patching again was
    patched by install before and changed back by the host: their decision stands.
    """
    if plan.state == "present":
        report.steps.append(Step("unchanged", shown, plan.detail))
        return "unchanged"
    if new.mount.get(key):
        report.steps.append(Step("kept", shown, KEPT[key]))
        return "kept"
    if plan.state == "manual" or plan.text is None:
        report.steps.append(Step("manual", shown, f"not patched: {plan.detail}"))
        return "manual"
    _patch(report, path, shown, source, plan.text)
    report.steps.append(Step("patched", shown, plan.detail))
    return "patched"


def _patch(report: InstallReport, path: Path, shown: str, source: str, text: str) -> None:
    """Write the patched text, or on a dry run only show its diff."""
    if report.dry_run:
        report.diffs.append(_diff(shown, source, text))
    else:
        _replace(path, text)


def _target(module: str | None, source: str) -> str | None:
    if module is None:
        return None
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    apps = app_assignments(tree) or litestar_assignments(tree)
    return f"{module}:{apps[0].name}" if len(apps) == 1 else None


def install(
    project_dir: Path, *, package: str | None = None, app: str | None = None, dry_run: bool = False
) -> InstallReport:
    """Plan (and unless ``dry_run``, apply) the install in ``project_dir``."""
    project_dir = project_dir.resolve()
    if not project_dir.is_dir():
        raise InstallError(f"--project-dir {project_dir}: no such folder")
    app_hint = (project_dir / app).resolve() if app is not None else None
    django = detect_django(project_dir)
    if django is not None and package is None:
        # The project package (settings, asgi.py), not one of the project's Django apps.
        package = relative_to(project_dir, django.package_dir)
    host = find_package(project_dir, package, app_hint)
    recorded = manifest_file.load(project_dir)
    new = Manifest(
        package=host.module,
        import_root=relative_to(project_dir, host.import_root) or ".",
        config=f"{host.module}.{CONFIG_MODULE}:{CONFIG_FACTORY}",
    )
    if recorded is not None:
        # Hashes of files from an earlier install with another package stay on record.
        new.files.update(recorded.files)
    if django is not None and app is None:
        app_file = django.asgi_file
    else:
        app_file = _find_app(project_dir, host, app)  # before writing anything: it may refuse
    report = InstallReport(project_dir=project_dir, package=host, dry_run=dry_run, django=django)
    for name, what in STARTERS:
        source, what = DJANGO_STARTERS.get(name, (name, what)) if django else (name, what)
        _starter(report, recorded, new, name, what, source)
    if django is not None:
        _mount_django(report, recorded, new, app_file)
    else:
        _mount(report, recorded, new, app_file)

    manifest_path = project_dir / MANIFEST_NAME
    text = new.to_json()
    if not manifest_path.exists() or manifest_path.read_text(encoding="utf-8") != text:
        if not dry_run:
            _replace(manifest_path, text)
        report.steps.append(Step("wrote", MANIFEST_NAME, "what install wrote, by content hash"))
    return report
