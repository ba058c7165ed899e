"""docs/hosts/litestar.md: its commands run, in order, in a freshly generated Litestar project.

The blocks follow the rules of ``test_docs_commands`` (``bash`` runs, ``bash app-running``
runs with ``uvicorn myapp.main:app`` and ``python -m myapp.worker`` up, ``python file=``
is written into the project, ``console`` is only shown).
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_install_litestar import litestar_project
from tests.docs.test_docs_commands import (
    APP_RUNNING,
    BLOCK_TIMEOUT,
    DOCS,
    RunningHost,
    blocks,
    file_target,
    free_port,
    runnable,
)
from tests.wheel.fixtures import FreshEnvs
from tests.wheel.freshenv import FreshEnv

PAGE = DOCS / "hosts" / "litestar.md"


def test_the_page_is_linked_from_the_installation_guide() -> None:
    assert "(hosts/litestar.md)" in (DOCS / "installation.md").read_text(encoding="utf-8")


def test_its_links_resolve_and_its_python_parses() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (PAGE.parent / target).exists(), f"broken link {target}"
    for block in blocks(PAGE):
        if block.lang == "python":
            ast.parse(block.text)
        assert block.lang not in ("sh", "shell", "zsh"), f"{block.where}: bash or console"
    commands = "".join(b.text for b in runnable(PAGE) if b.lang == "bash")
    for command in ("oban-powertools install", "oban-powertools migrate", "doctor --url"):
        assert command in commands


@pytest.fixture(scope="module")
def reader_env(fresh_envs: FreshEnvs) -> FreshEnv:
    """What a reader has after ``pip install "oban-powertools[litestar]" uvicorn``."""
    return fresh_envs(extras=("litestar",), packages=("uvicorn",))


@pytest.fixture
def host_env(fresh_db_url: str, reader_env: FreshEnv) -> dict[str, str]:
    return reader_env.environ(DATABASE_URL=fresh_db_url, PORT=str(free_port()))


@pytest.fixture
def running(
    tmp_path: Path, host_env: dict[str, str], reader_env: FreshEnv
) -> Iterator[tuple[Path, RunningHost]]:
    project = litestar_project(tmp_path / "project")
    host = RunningHost(project, host_env, reader_env.python)
    try:
        yield project, host
    finally:
        host.stop()


@pytest.mark.wheel
def test_the_commands_run_in_a_fresh_litestar_project(
    running: tuple[Path, RunningHost], host_env: dict[str, str]
) -> None:
    project, host = running
    started = False
    for block in runnable(PAGE):
        if (target := file_target(block)) is not None:
            (project / target).write_text(block.text, encoding="utf-8")
            continue
        if APP_RUNNING in block.attrs and not started:
            # What the page says install wrote, before the app that runs it starts.
            assert "plugins=[PowertoolsPlugin(powertools)]" in (
                project / "myapp" / "main.py"
            ).read_text(encoding="utf-8")
            host.start()
            started = True
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.text],
            cwd=project,
            env=host_env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        assert result.returncode == 0, (
            f"{block.where} exited {result.returncode}\n$ {block.text}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    assert started, "the page never boots the host"
    assert "mount" in result.stdout and "answers 401" in result.stdout, result.stdout
