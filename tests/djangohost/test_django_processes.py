"""The example Django host's processes as a user runs them: ``manage.py oban_worker``,
``oban-powertools action`` with the seam's ``actor_for_cli``, and uvicorn."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.djangohost.conftest import EXAMPLE, example_env

VENV_BIN = Path(sys.executable).parent
CONFIG = "opsdemo.powertools_config:build_config"


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as the example's README runs it: from the project folder, no PYTHONPATH."""
    env = example_env(database_url)
    del env["PYTHONPATH"]
    return subprocess.run(
        [str(VENV_BIN / "oban-powertools"), *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.2)


def start(database_url: str, command: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        cwd=EXAMPLE,
        env=example_env(database_url),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_the_worker_command_runs_a_runtime_node_and_stops_on_sigterm(
    django_db: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = start(django_db, [sys.executable, "manage.py", "oban_worker"], log)
    try:

        def leader_passes() -> bool:
            assert worker.poll() is None, log.read_text()
            done = run_cli(django_db, "doctor", "--config", CONFIG, "--skip", "mount", "--json")
            checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
            return bool(checks["leader"]["status"] == "ok")

        wait_for(leader_passes, 60, "doctor's leader check sees the worker node")
        with psycopg.connect(django_db, row_factory=dict_row) as conn:
            nodes = conn.execute("SELECT node FROM powertools_runtime_nodes").fetchall()
        assert nodes, "the node runs the powertools runtime"
    finally:
        code = stop(worker)
    output = log.read_text()
    assert code == 0, output
    assert "oban worker started" in output and "oban worker stopping" in output


def test_the_worker_command_refuses_bad_queues(django_db: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "oban_worker", "--queues", "default=lots"],
        cwd=EXAMPLE,
        env=example_env(django_db),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "is not NAME=LIMIT" in done.stderr, done.stderr


def test_cli_actions_act_as_the_django_user(django_db: str) -> None:
    args = ["action", "pause_cron_entry", "nightly_sync", "--reason", "upstream outage"]
    refused = run_cli(django_db, *args, "--actor", "ops-viewer", "--yes", "--config", CONFIG)
    assert refused.returncode != 0 and "unauthorized" in refused.stderr, refused.stderr
    unknown = run_cli(django_db, *args, "--actor", "nobody", "--yes", "--config", CONFIG)
    assert "knows no operator 'nobody'" in unknown.stderr, unknown.stderr
    done = run_cli(django_db, *args, "--actor", "ops-demo", "--yes", "--config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "operator: Ops Demo" in done.stdout
    with psycopg.connect(django_db, row_factory=dict_row) as conn:
        event = conn.execute(
            "SELECT principal_id, principal_label, surface FROM powertools_audit_events "
            "WHERE outcome = 'succeeded'"
        ).fetchone()
    assert event == {"principal_id": "ops-demo", "principal_label": "Ops Demo", "surface": "cli"}


@pytest.mark.timeout(90)
def test_uvicorn_serves_the_example_with_its_lifespan(django_db: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    command = [sys.executable, "-m", "uvicorn", "opsdemo.asgi:application", "--port", str(port)]
    web = start(django_db, command, log)
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert web.poll() is None, log.read_text()
            try:
                httpx.get(base + "/accounts/login/", timeout=1)
            except httpx.HTTPError:
                return False
            return True

        wait_for(answers, 30, "uvicorn answers")
        page = httpx.get(base + "/ops/jobs/")
        assert page.status_code == 303
        assert page.headers["location"] == "/accounts/login/?next=%2Fops%2Fjobs%2F"
    finally:
        code = stop(web)
    output = log.read_text()
    assert code in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal it stopped on
    # The lifespan ran through the dispatcher: Django never saw it (it would raise, and
    # uvicorn would log "ASGI 'lifespan' protocol appears unsupported").
    assert "Application startup complete" in output and "Application shutdown complete" in output
    assert "unsupported" not in output and "Traceback" not in output, output
