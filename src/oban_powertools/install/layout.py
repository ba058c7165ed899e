"""Finding the host's package: where the starter files go and how they are imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import PowertoolsError

# Folders that hold packages but never the host application's own code.
NOT_HOST_PACKAGES = frozenset(
    {"tests", "test", "docs", "examples", "scripts", "build", "dist", "migrations", "alembic"}
)


class InstallError(PowertoolsError):
    """The installer cannot proceed; the message says what to pass or fix."""

    code = "install_failed"


@dataclass(frozen=True, slots=True)
class HostPackage:
    """A package folder of the host, with the import name its files are reached by."""

    path: Path  # absolute
    import_root: Path  # absolute folder that must be on sys.path, e.g. the project or src/
    module: str  # dotted name, e.g. "myapp"

    def module_of(self, file: Path) -> str | None:
        """Dotted module name of a .py file below the import root, or None when outside."""
        try:
            relative = file.resolve().relative_to(self.import_root).with_suffix("")
        except ValueError:
            return None
        parts = list(relative.parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def relative_to(project_dir: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _is_candidate(folder: Path) -> bool:
    name = folder.name
    return (
        folder.is_dir()
        and name.isidentifier()
        and not name.startswith(("_", "."))
        and name not in NOT_HOST_PACKAGES
        and (folder / "__init__.py").is_file()
    )


def candidate_packages(project_dir: Path) -> list[Path]:
    """Top-level packages of the project, in the flat layout or the src/ layout."""
    found: list[Path] = []
    for base in (project_dir, project_dir / "src"):
        if base.is_dir():
            found.extend(child for child in sorted(base.iterdir()) if _is_candidate(child))
    return found


def describe(project_dir: Path, folder: Path) -> HostPackage:
    folder = folder.resolve()
    root = folder.parent
    while (root / "__init__.py").is_file() and root != root.parent:
        root = root.parent
    parts = folder.relative_to(root).parts
    if not all(part.isidentifier() for part in parts):
        raise InstallError(
            f"{relative_to(project_dir, folder)} is not importable as a Python package "
            "(its folder names must be identifiers); pass --package with the package folder"
        )
    return HostPackage(path=folder, import_root=root, module=".".join(parts))


def find_package(project_dir: Path, package: str | None, app_file: Path | None) -> HostPackage:
    """The package named by ``--package``, else the only one that fits; never a guess."""
    if package is not None:
        folder = (project_dir / package).resolve()
        if not folder.is_dir():
            raise InstallError(f"--package {package}: no such folder in {project_dir}")
        if not folder.is_relative_to(project_dir.resolve()):
            raise InstallError(f"--package {package} is outside the project {project_dir}")
        return describe(project_dir, folder)
    candidates = candidate_packages(project_dir)
    if app_file is not None:
        holding = [c for c in candidates if app_file.resolve().is_relative_to(c.resolve())]
        if len(holding) == 1:
            return describe(project_dir, holding[0])
    if len(candidates) == 1:
        return describe(project_dir, candidates[0])
    if not candidates:
        raise InstallError(
            f"found no Python package (a folder with __init__.py) in {project_dir} or its src/; "
            "pass --package PATH, the folder of your app's package"
        )
    names = ", ".join(relative_to(project_dir, c) for c in candidates)
    raise InstallError(
        f"found several packages ({names}); pass --package PATH to say which one is your app's"
    )
