"""Every command finds the host project from the folder it runs in, as a user runs it: a
real process in the project folder, no PYTHONPATH, no OBAN_POWERTOOLS_* variables."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.cli.hostproject import VENV_BIN, make_project

CLI = str(VENV_BIN / "oban-powertools")

# What a host writes into the starter to make it its own: one operator, known to the CLI.
OWNED_AUTH = """
from typing import Any

from oban_powertools import Principal, Resource

OPERATORS = {"ops-demo": "Ops Demo"}


class PowertoolsAuth:
    def current_actor(self, request: Any) -> Any | None:
        return None

    def actor_for_cli(self, actor_id: str) -> str | None:
        return actor_id if actor_id in OPERATORS else None

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        return actor in OPERATORS

    def audit_principal(self, actor: Any) -> Principal:
        return Principal(id=actor, type="user", label=OPERATORS[actor])
"""


def environment(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OBAN_POWERTOOLS_") and k not in ("PYTHONPATH", "DATABASE_URL")
    }
    env.update(values)
    return env


def run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        cwd=project,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(url: str, sql: str) -> list[dict[str, object]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


@pytest.fixture
def installed(tmp_path: Path, db_url: str) -> Path:
    project = make_project(tmp_path / "host")
    result = run(project, "install")
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO powertools_cron_entries (name, source, worker, expression) "
            "VALUES ('nightly_sync', 'runtime', 'myapp.NightlySync', '0 2 * * *')"
        )
    return project


PAUSE = (
    "action",
    "pause_cron_entry",
    "nightly_sync",
    "--actor",
    "ops-demo",
    "--reason",
    "upstream outage",
    "--yes",
)


def test_action_reads_the_install_manifest(installed: Path, db_url: str) -> None:
    # The starter as generated: actor_for_cli is there, and denies.
    refused = run(installed, *PAUSE, DATABASE_URL=db_url)
    assert refused.returncode == 1
    assert "the auth seam knows no operator 'ops-demo'" in refused.stderr, refused.stderr
    assert rows(db_url, "SELECT paused FROM powertools_cron_entries") == [{"paused": False}]

    (installed / "myapp" / "ops_auth.py").write_text(OWNED_AUTH)
    done = run(installed, *PAUSE, DATABASE_URL=db_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Done: audit event" in done.stdout
    (event,) = rows(db_url, "SELECT surface, principal_id, reason FROM powertools_audit_events")
    assert event == {"surface": "cli", "principal_id": "ops-demo", "reason": "upstream outage"}


def test_config_option_imports_from_the_project(installed: Path, db_url: str) -> None:
    (installed / "myapp" / "ops_auth.py").write_text(OWNED_AUTH)
    config = "myapp.powertools_config:build_config"
    elsewhere = installed.parent / "elsewhere"
    elsewhere.mkdir()
    done = run(
        elsewhere, *PAUSE, "--config", config, "--project-dir", str(installed), DATABASE_URL=db_url
    )
    assert done.returncode == 0, done.stdout + done.stderr

    missing = run(installed, *PAUSE, "--config", "myapp.nope:build", DATABASE_URL=db_url)
    assert missing.returncode == 1
    # The setting named is the one given, and the fix is not "set PYTHONPATH".
    assert "--config: cannot import module 'myapp.nope'" in missing.stderr, missing.stderr
    assert "OBAN_POWERTOOLS_CONFIG" not in missing.stderr and "PYTHONPATH" not in missing.stderr


def test_doctor_and_action_find_the_same_config(installed: Path, db_url: str) -> None:
    doctor = run(installed, "doctor", "--json", "--skip", "leader", DATABASE_URL=db_url)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    (config,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "config"]
    assert config["detail"] == (
        "myapp.powertools_config:build_config (from .oban-powertools-install.json)"
    )


def test_an_unmigrated_database_is_named_not_a_traceback(
    installed: Path, fresh_db_url: str
) -> None:
    (installed / "myapp" / "ops_auth.py").write_text(OWNED_AUTH)
    result = run(installed, *PAUSE, DATABASE_URL=fresh_db_url)
    assert result.returncode == 1
    assert "Run `oban-powertools migrate`; nothing was changed." in result.stderr
    assert "Traceback" not in result.stderr


def test_install_prints_the_worker_line(tmp_path: Path) -> None:
    project = make_project(tmp_path / "host")
    result = run(project, "install")
    assert result.returncode == 0, result.stderr
    next_steps = result.stdout.split("Next:", 1)[1]
    assert "from myapp.powertools_config import powertools" in next_steps
    assert (
        'oban = Oban(pool=pool, queues={"default": 10}, **powertools.oban_options())' in next_steps
    )
    assert 'powertools = "myapp.powertools_config:powertools"' in next_steps
    assert "[scheduler] and [stager]" in next_steps
