"""The docs' shell commands run, in order, in a freshly generated project on a real database.

They run as a reader runs them after ``pip install oban-powertools``: with the binaries of a
fresh virtual environment holding the built wheel (``tests/wheel/freshenv.py``: the
``fastapi`` extra and uvicorn, no development dependencies) first on ``PATH``, the host
project as the current directory, and no ``PYTHONPATH``.

How a fenced block in ``docs/*.md`` is treated, by its info string:

``bash``
    runnable offline: run, in document order, with ``bash -e -o pipefail`` in the project
    folder; it must exit 0.
``bash app-running``
    the same, with the host running first, as the docs tell a reader to run it:
    ``uvicorn myapp.main:app`` on ``$PORT`` and ``python -m myapp.worker`` (an oban node
    with queues, hence a leader).
``console``
    shown, never run: needs the network or a registry, changes the reader's environment,
    or keeps running (``make demo``).
``python file=PATH``
    a file the reader writes: written into the project at that point, so the commands
    after it (and the host they start) use exactly what the page shows.
``text output``
    the output the command block just before it prints (a sample): for ``doctor``, its
    check lines (mark and name, in order) and its summary must match the real run's.

Any other shell-ish info string (``sh``, ``shell``, ...) is an error, so nothing that
looks runnable escapes the test by accident. Python blocks must parse.
"""

from __future__ import annotations

import ast
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.cli.hostproject import ROOT, make_project
from tests.wheel.fixtures import FreshEnvs
from tests.wheel.freshenv import FreshEnv

DOCS = ROOT / "docs"
DOC_FILES = sorted(DOCS.glob("**/*.md"))  # hosts/ too
REQUIRED_DOCS = (
    "installation.md",
    "first-operator-session.md",
    "forensics-and-runbook-handoffs.md",
    "policy-integration.md",
    "oban-web-bridge.md",
    "support-truth.md",
)
SHELL_LANGS = frozenset({"bash", "console", "sh", "shell", "zsh", "shell-session", "shellsession"})
APP_RUNNING = "app-running"
OUTPUT = "output"
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`]*)$")
BLOCK_TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class Block:
    doc: str
    line: int
    lang: str
    attrs: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"docs/{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, info = opening[1], opening[2].split()
        body: list[str] = []
        start = index + 1
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        lang = info[0] if info else ""
        found.append(Block(path.name, start, lang, tuple(info[1:]), "\n".join(body) + "\n"))
    return found


def file_target(block: Block) -> str | None:
    for attr in block.attrs:
        if attr.startswith("file="):
            return attr.removeprefix("file=")
    return None


def is_output(block: Block) -> bool:
    return block.lang == "text" and OUTPUT in block.attrs


def runnable(path: Path) -> list[Block]:
    """The blocks the test acts on, in document order: commands, and files to write."""
    return [b for b in blocks(path) if b.lang == "bash" or file_target(b) is not None]


def acted_on(path: Path) -> list[Block]:
    """``runnable`` plus the sample outputs, which are compared with the real ones."""
    return [b for b in blocks(path) if b in runnable(path) or is_output(b)]


CHECK_LINE = re.compile(r"^([✓✗-]) (\w+)\s+(.*)$")
SUMMARY = re.compile(r"^\d+ passed, \d+ failed, \d+ skipped$", re.MULTILINE)
# Checks whose detail is the same on every machine; the others name the reader's own
# database URL and server version, port, and worker host.
STABLE_DETAILS = frozenset({"oban_schema", "migrations", "config", "auth", "display", "bridge"})


def doctor_shape(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """What a doctor report is compared on: each line's mark, check and (where it does
    not depend on the machine) detail, in order, and the summary."""
    checks = [
        (m[1], m[2], m[3] if m[2] in STABLE_DETAILS else "")
        for line in text.splitlines()
        if (m := CHECK_LINE.match(line))
    ]
    return checks, SUMMARY.findall(text)


def doctor_samples(path: Path) -> list[Block]:
    found = []
    for before, block in zip(blocks(path), blocks(path)[1:], strict=False):
        if is_output(block) and before.lang == "bash" and "oban-powertools doctor" in before.text:
            found.append(block)
    return found


def test_the_documented_pages_exist() -> None:
    assert {p.name for p in DOC_FILES} >= set(REQUIRED_DOCS)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_every_shell_block_says_whether_it_runs(path: Path) -> None:
    for block in blocks(path):
        if block.lang in SHELL_LANGS:
            assert block.lang in ("bash", "console"), (
                f"{block.where}: mark shell blocks `bash` (run by the tests) or `console` "
                f"(shown only), not `{block.lang}`"
            )
        if block.lang == "bash":
            assert set(block.attrs) <= {APP_RUNNING}, f"{block.where}: unknown {block.attrs}"
        if (target := file_target(block)) is not None:
            assert not Path(target).is_absolute() and ".." not in Path(target).parts, (
                f"{block.where}: file= must be a path inside the project"
            )


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_python_blocks_parse(path: Path) -> None:
    for block in blocks(path):
        if block.lang == "python":
            try:
                ast.parse(block.text)
            except SyntaxError as exc:
                pytest.fail(f"{block.where}: {exc}")


def test_installation_runs_the_paved_road() -> None:
    commands = "".join(b.text for b in runnable(DOCS / "installation.md") if b.lang == "bash")
    for command in ("oban-powertools install", "oban-powertools migrate", "oban-powertools doctor"):
        assert command in commands
    assert any(APP_RUNNING in b.attrs for b in runnable(DOCS / "installation.md"))


def test_the_doctor_sample_lists_every_check_in_order() -> None:
    from oban_powertools.doctor import CHECKS

    samples = [b for p in DOC_FILES for b in doctor_samples(p)]
    assert samples, "no `text output` sample after a doctor command in the docs"
    for sample in samples:
        checks, summary = doctor_shape(sample.text)
        assert [name for _, name, _ in checks] == list(CHECKS), sample.where
        marks = [mark for mark, _, _ in checks]
        assert summary == [
            f"{marks.count('✓')} passed, {marks.count('✗')} failed, {marks.count('-')} skipped"
        ], sample.where


def test_make_demo_is_the_documented_entry_point() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    session = blocks(DOCS / "first-operator-session.md")
    assert any(b.lang == "console" and "make demo" in b.text for b in session)


def test_wording_contract_is_stated_verbatim() -> None:
    text = (DOCS / "forensics-and-runbook-handoffs.md").read_text(encoding="utf-8")
    for label in (
        "Powertools-native",
        "Oban Web bridge",
        "host-owned follow-up",
        "Audited action",
        "Inspection only",
        "complete",
        "partial evidence",
        "history unavailable",
        "unknown",
        "unconfigured",
        "invoked",
        "failed",
    ):
        assert f"`{label}`" in text, label
    session = (DOCS / "first-operator-session.md").read_text(encoding="utf-8")
    for name in ("ops-demo", "pause_cron_entry", "nightly_sync", "/ops/jobs/forensics"):
        assert f"`{name}`" in session or name in session


@pytest.mark.parametrize("path", [*DOC_FILES, ROOT / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{path.name}: broken link {target}"


def test_support_truth_evidence_exists() -> None:
    text = (DOCS / "support-truth.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"`(tests/[\w./-]+)`", text))
    assert cited, "support-truth.md cites no tests"
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, f"support-truth.md cites tests that do not exist: {missing}"


# -- running the commands -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningHost:
    """The documented boot step: the web process and the worker, until stopped."""

    def __init__(self, project: Path, env: dict[str, str], python: Path) -> None:
        self.project = project
        self.env = env
        self.python = str(python)
        self.log = project / ".host.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        port = self.env["PORT"]
        with self.log.open("ab") as log:
            for command in (
                [self.python, "-m", "uvicorn", "myapp.main:app", "--port", port],
                [self.python, "-m", "myapp.worker"],
            ):
                self.processes.append(
                    subprocess.Popen(
                        command, cwd=self.project, env=self.env, stdout=log, stderr=log
                    )
                )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            if self._listening(int(port)) and self._leader():
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the host did not come up:\n{self.log.read_text()}")

    def _listening(self, port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def _leader(self) -> bool:
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            row = conn.execute(
                "SELECT count(*) FROM oban_leaders WHERE expires_at > timezone('UTC', now())"
            ).fetchone()
        return bool(row and row[0])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


@pytest.fixture(scope="module")
def reader_env(fresh_envs: FreshEnvs) -> FreshEnv:
    """What a reader has after ``pip install "oban-powertools[fastapi]" uvicorn``."""
    return fresh_envs(extras=("fastapi",), packages=("uvicorn",))


@pytest.fixture
def host_env(fresh_db_url: str, reader_env: FreshEnv) -> dict[str, str]:
    return reader_env.environ(DATABASE_URL=fresh_db_url, PORT=str(free_port()))


@pytest.fixture
def running(
    tmp_path: Path, host_env: dict[str, str], reader_env: FreshEnv
) -> Iterator[tuple[Path, RunningHost]]:
    project = make_project(tmp_path / "project")
    host = RunningHost(project, host_env, reader_env.python)
    try:
        yield project, host
    finally:
        host.stop()


RUNNABLE_DOCS = [p for p in DOC_FILES if runnable(p)]


@pytest.mark.wheel
@pytest.mark.parametrize("path", RUNNABLE_DOCS, ids=lambda p: p.name)
def test_runnable_commands(
    path: Path, running: tuple[Path, RunningHost], host_env: dict[str, str], reader_env: FreshEnv
) -> None:
    project, host = running
    which = subprocess.run(
        ["bash", "-c", "command -v oban-powertools"], env=host_env, capture_output=True, text=True
    )
    assert Path(which.stdout.strip()).is_relative_to(reader_env.root), which.stdout
    started = False
    last: tuple[Block, str] | None = None
    for block in acted_on(path):
        if is_output(block):
            assert last is not None, f"{block.where}: an output sample before any command"
            command, stdout = last
            real, sample = doctor_shape(stdout), doctor_shape(block.text)
            assert real[0], f"{block.where}: only doctor samples are compared; {command.where}"
            assert sample == real, (
                f"{block.where} shows a doctor report that differs from the real one:\n"
                f"--- documented\n{block.text}--- real ({command.where})\n{stdout}"
            )
            continue
        if (target := file_target(block)) is not None:
            (project / target).write_text(block.text, encoding="utf-8")
            continue
        if APP_RUNNING in block.attrs and not started:
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
        last = (block, result.stdout)
