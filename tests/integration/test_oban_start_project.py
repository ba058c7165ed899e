"""The documented `oban start` works from the project folder, with no PYTHONPATH."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.cli.hostproject import VENV_BIN, make_project

WORKERS = """
from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec

declare(CronEntrySpec(name="project_nightly", worker="myapp.Nightly", expression="0 2 * * *"))
"""


def query(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def test_oban_start_from_the_project_folder(db_url: str, tmp_path: Path) -> None:
    project = make_project(tmp_path / "host")
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith(("OBAN_POWERTOOLS_", "OBAN_"))
    }
    env["DATABASE_URL"] = db_url
    install = subprocess.run(
        [str(VENV_BIN / "oban-powertools"), "install"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    (project / "myapp" / "workers.py").write_text(WORKERS)
    # As the installation guide shows it (the path install's Next steps print).
    (project / "oban.toml").write_text(
        textwrap.dedent(
            f"""
            dsn = "{db_url}"
            node = "project-node-1"
            queues = {{ default = 2 }}

            [scheduler]
            powertools = "myapp.powertools_config:powertools"

            [stager]
            powertools = "myapp.powertools_config:powertools"
            """
        )
    )
    env["OBAN_CRON_MODULES"] = "oban_powertools.oban_cli,myapp.workers"
    process = subprocess.Popen(
        [str(VENV_BIN / "oban"), "start"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        nodes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and process.poll() is None:
            nodes = query(db_url, "SELECT name, node FROM powertools_runtime_nodes")
            if nodes:
                break
            time.sleep(0.2)
        assert nodes == [{"name": "Oban", "node": "project-node-1"}], process.poll()
        entries = query(db_url, "SELECT name, source FROM powertools_cron_entries")
        assert entries == [{"name": "project_nightly", "source": "code"}]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "No module named 'myapp'" not in output
