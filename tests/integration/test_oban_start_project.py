"""The documented `oban start` works from the project folder, with no PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from tests.cli.hostproject import VENV_BIN, make_project
from tests.support.oban_start import run_oban_start

WORKERS = """
from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec

declare(CronEntrySpec(name="project_nightly", worker="myapp.Nightly", expression="0 2 * * *"))
"""


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
    # The node row is written before the entries are synced: wait for both.
    run = run_oban_start(
        [str(VENV_BIN / "oban"), "start"],
        cwd=project,
        env=env,
        db_url=db_url,
        also="SELECT 1 FROM powertools_cron_entries",
    )
    assert run.nodes == [{"name": "Oban", "node": "project-node-1"}], run.output
    assert run.entries == [{"name": "project_nightly", "source": "code"}]
    assert run.returncode == 0, run.output
    assert "No module named 'myapp'" not in run.output
