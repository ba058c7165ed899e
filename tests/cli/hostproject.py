"""A freshly generated host project, as a developer would have it before installing.

Shared by the CLI tests and the docs tests (import it as ``tests.cli.hostproject``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

MAIN = '''\
"""The host's web app."""

from fastapi import FastAPI

app = FastAPI(title="My app")


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}
'''

WORKER = '''\
"""The host's worker process: oban queues (and with them, leadership)."""

import asyncio
import os
import signal

from oban import Oban


async def main() -> None:
    pool = await Oban.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=3)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Oban(pool=pool, queues={"default": 2}):
            print("worker started", flush=True)
            await stop.wait()
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
'''


def make_project(root: Path, *, main: str = MAIN, package: str = "myapp") -> Path:
    """``root/<package>/{__init__,main,worker}.py`` plus a pyproject, like a new service."""
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(main)
    (pkg / "worker.py").write_text(WORKER)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{package}"\nversion = "0.1.0"\n'
        'dependencies = ["fastapi", "oban-powertools"]\n'
    )
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's content and mtime: what "changes nothing" is compared on."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@contextmanager
def host_imports(project: Path) -> Iterator[None]:
    """Import the host's modules from ``project``; forget them (and the path) afterwards.

    Every test writes its own ``myapp``, so nothing imported may outlive the test.
    """
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    sys.path.insert(0, str(project))
    try:
        yield
    finally:
        sys.path[:] = path_before
        for name in set(sys.modules) - modules_before:
            if name == "myapp" or name.startswith("myapp."):
                del sys.modules[name]


def cli_env(**values: str | None) -> dict[str, str | None]:
    """An environment for the CLI with no OBAN_POWERTOOLS_* leaking in from outside."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OBAN_POWERTOOLS_")}
    env.update(values)
    return env
