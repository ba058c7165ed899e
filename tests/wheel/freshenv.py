"""Fresh virtual environments holding the built wheel: what a user has after ``pip install``.

The wheel is built once per session (``uv build --wheel``). Each :class:`FreshEnv` is a new
venv (``uv venv``) with the wheel, the extras asked for and the host's own packages (e.g.
``uvicorn``), and nothing from the development environment: no pytest, no httpx unless the
``bridge`` extra is asked for, no ``PYTHONPATH``. Versions are constrained to ``uv.lock``
(``uv export --frozen``: the lock's pins, dev group included so the host's own packages
such as uvicorn get the locked version too; a constraint never installs anything by
itself), so the layer tests the release's dependency set rather than PyPI's newest.

uv never downloads an interpreter (``UV_PYTHON_DOWNLOADS=never``): the venv uses the
interpreter running the tests. Packages come from uv's cache (``--offline`` first), else
from PyPI: revalidating the cache online makes uv rebuild sdist-only dependencies such as
erlpack (a C++ extension, ~20 s) whenever the index answers "modified", so a warm cache is
used as it is.

Typical use, from a test file::

    env = fresh_envs(extras=("fastapi",), packages=("uvicorn",))
    env.run(["oban-powertools", "install"], cwd=project)
    server = processes.start("web", [env.bin("uvicorn"), "myapp.main:app"], cwd=project)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTERPRETER = os.path.realpath(sys.executable)
DEV_BIN = str(Path(sys.executable).parent)
INSTALL_TIMEOUT = 600  # a cold uv cache downloads every dependency from PyPI
# What points a process at the development environment (uv's cache and index settings,
# such as UV_CACHE_DIR or UV_INDEX_URL, pass through).
DEV_ONLY = frozenset(
    {
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "UV_PROJECT_ENVIRONMENT",
        "UV_PYTHON",
        "UV_SYSTEM_PYTHON",
        "UV_OFFLINE",
        "COVERAGE_PROCESS_START",
    }
)


def uv_binary() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        raise RuntimeError("uv not found: run tools/bootstrap (it installs uv into .tools/)")
    return found


def clean_environ(**values: str) -> dict[str, str]:
    """The test's environment without anything that would reach into the dev environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OBAN_POWERTOOLS_", "PYTEST_")) and k not in DEV_ONLY
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != DEV_BIN]
    env["PATH"] = os.pathsep.join(path)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(values)
    return env


def _run(args: Sequence[str | Path], cwd: Path, env: Mapping[str, str], timeout: float) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"$ {' '.join(map(str, args))}\nexited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result.stdout


def _run_cached_first(
    args: Sequence[str | Path], cwd: Path, env: Mapping[str, str], timeout: float
) -> str:
    """A uv command from the cache alone, else (a cold cache) with the index."""
    uv, *rest = args
    try:
        return _run([uv, "--offline", *rest], cwd, env, timeout)
    except RuntimeError:
        return _run(args, cwd, env, timeout)


@dataclass(frozen=True, slots=True)
class Build:
    """The wheel and the lock's pins, made once per session."""

    wheel: Path
    constraints: Path


def build_wheel(workdir: Path) -> Build:
    uv = uv_binary()
    env = clean_environ()
    dist = workdir / "dist"
    _run_cached_first(
        [uv, "build", "--wheel", "--out-dir", dist, "--python", INTERPRETER, ROOT],
        ROOT,
        env,
        INSTALL_TIMEOUT,
    )
    (wheel,) = dist.glob("oban_powertools-*.whl")
    constraints = workdir / "constraints.txt"
    _run(
        [
            uv,
            "export",
            "--frozen",
            "--no-hashes",
            "--all-extras",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            "--output-file",
            constraints,
        ],
        ROOT,
        env,
        120,
    )
    return Build(wheel, constraints)


@dataclass(frozen=True, slots=True)
class FreshEnv:
    """A venv with the wheel in it; commands run with its binaries first on ``PATH``."""

    root: Path
    extras: tuple[str, ...]
    packages: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def bin(self, name: str) -> Path:
        path = self.root / "bin" / name
        if not path.exists():
            raise FileNotFoundError(f"{name} is not installed in the fresh environment")
        return path

    def environ(self, **values: str) -> dict[str, str]:
        """Like an activated venv: its ``bin`` first on ``PATH``, the dev venv's nowhere."""
        env = clean_environ(VIRTUAL_ENV=str(self.root))
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env["PATH"]])
        env.update(values)
        return env

    def command(self, args: Sequence[str | Path]) -> list[str]:
        """``args`` with a bare program name (``oban-powertools``, ``python``) taken from
        this venv, never from the one running the tests."""
        first, *rest = (str(a) for a in args)
        if os.sep not in first:
            first = str(self.bin(first))
        return [first, *rest]

    def run(
        self,
        args: Sequence[str | Path],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of this venv; the caller checks ``returncode`` (and says why)."""
        return subprocess.run(
            self.command(args),
            cwd=cwd,
            env=dict(env if env is not None else self.environ()),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def check(
        self,
        args: Sequence[str | Path],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> str:
        """Run a command that must succeed; its stdout, else a failure quoting both streams."""
        result = self.run(args, cwd=cwd, env=env, timeout=timeout)
        assert result.returncode == 0, (
            f"$ {' '.join(map(str, args))}\nexited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        return result.stdout

    def has_module(self, name: str) -> bool:
        probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"
        return self.run(["python", "-c", probe], cwd=self.root).returncode == 0


def fresh_env(
    build: Build,
    root: Path,
    *,
    extras: Sequence[str] = (),
    packages: Sequence[str] = (),
) -> FreshEnv:
    """A new venv at ``root`` with ``oban-powertools[extras]`` from the wheel, plus the
    host's own ``packages``, pinned to the lock."""
    uv = uv_binary()
    env = clean_environ()
    # Run outside the repository, so uv finds no project (and no .venv) to act on.
    cwd = root.parent
    _run([uv, "venv", "--quiet", "--python", INTERPRETER, root], cwd, env, 120)
    requirement = "oban-powertools"
    if extras:
        requirement += f"[{','.join(extras)}]"
    _run_cached_first(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            root / "bin" / "python",
            "--constraints",
            build.constraints,
            f"{requirement} @ {build.wheel.as_uri()}",
            *packages,
        ],
        cwd,
        env,
        INSTALL_TIMEOUT,
    )
    return FreshEnv(root, tuple(extras), tuple(packages))
