"""Workers started with oban's own CLI (``oban start`` and ``oban.toml``) run the runtime."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from oban_powertools import ConfigError
from oban_powertools.runtime import Runtime, instance
from oban_powertools.runtime import hooks as oban_hooks
from tests.support.db import ROOT
from tests.support.oban_start import query, run_oban_start
from tests.support.seams import make_powertools

APP = """
import os

from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec
from tests.support.seams import make_powertools

powertools = make_powertools(os.environ["CLIAPP_DATABASE_URL"])
declare(CronEntrySpec(name="cli_nightly", worker="cliapp.Nightly", expression="0 2 * * *"))
"""


def test_oban_start_with_oban_toml_runs_the_runtime(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(APP)
    (tmp_path / "oban.toml").write_text(
        textwrap.dedent(
            f"""
            dsn = "{db_url}"
            node = "cli-node-1"
            queues = {{ default = 2 }}

            [scheduler]
            powertools = "cliapp:powertools"

            [stager]
            powertools = "cliapp:powertools"
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "CLIAPP_DATABASE_URL": db_url,
        "OBAN_CRON_MODULES": "oban_powertools.oban_cli,cliapp",
    }
    oban = Path(sys.executable).parent / "oban"
    run = run_oban_start(
        [str(oban), "start", "--config", str(tmp_path / "oban.toml")],
        cwd=tmp_path,
        env=env,
        db_url=db_url,
        also="SELECT 1 FROM powertools_cron_entries",  # synced after the node row
    )
    assert run.nodes == [{"name": "Oban", "node": "cli-node-1"}], run.output
    assert run.entries == [{"name": "cli_nightly", "source": "code"}]
    assert run.returncode == 0, run.output


@pytest.fixture
def fresh_paths() -> Iterator[None]:
    saved = dict(instance._BY_PATH)
    instance._BY_PATH.clear()
    yield
    instance._BY_PATH.clear()
    instance._BY_PATH.update(saved)


def test_an_import_path_gives_one_runtime_per_path(
    db_url: str, fresh_paths: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = type(sys)("pathapp")
    module.powertools = make_powertools(db_url)  # type: ignore[attr-defined]
    module.runtime = Runtime(module.powertools)  # type: ignore[attr-defined]
    module.build = lambda: module.powertools  # type: ignore[attr-defined]
    module.other = "not a runtime"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pathapp", module)

    made = instance.runtime_at("pathapp:powertools")
    assert isinstance(made, Runtime) and made.powertools is module.powertools  # type: ignore[attr-defined]
    assert instance.runtime_at("pathapp:powertools") is made  # scheduler and stager share it
    assert instance.runtime_at("pathapp:runtime") is module.runtime  # type: ignore[attr-defined]
    assert instance.runtime_at("pathapp:build").powertools is module.powertools  # type: ignore[attr-defined]
    instance.install_hooks()  # as oban_cli does before oban builds anything
    rest = oban_hooks._split({"powertools": "pathapp:powertools", "timezone": "UTC"})
    assert rest == (made, {"timezone": "UTC"})
    with pytest.raises(ConfigError, match="not a Runtime or Powertools"):
        instance.runtime_at("pathapp:other")
    with pytest.raises(ConfigError, match="no attribute"):
        instance.runtime_at("pathapp:missing")


def _limits_project(tmp_path: Path, db_url: str, queues: str) -> tuple[list[str], dict[str, str]]:
    (tmp_path / "cliapp.py").write_text(APP)
    (tmp_path / "oban.toml").write_text(
        textwrap.dedent(
            f"""
            dsn = "{db_url}"
            node = "cli-limits-1"

            [queues]
            {queues}

            [scheduler]
            powertools = "cliapp:powertools"

            [stager]
            powertools = "cliapp:powertools"
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "CLIAPP_DATABASE_URL": db_url,
        "OBAN_CRON_MODULES": "oban_powertools.oban_cli,cliapp",
    }
    oban = Path(sys.executable).parent / "oban"
    return [str(oban), "start", "--config", str(tmp_path / "oban.toml")], env


def test_queue_limits_declared_in_oban_toml_are_stored_when_the_node_starts(
    db_url: str, tmp_path: Path
) -> None:
    command, env = _limits_project(
        tmp_path,
        db_url,
        'exports = { limit = 4, global_limit = { allowed = 1, partition = { fields = ["args"], '
        'keys = ["customer_id"] } }, rate_limit = { allowed = 100, period = 60 } }',
    )
    run = run_oban_start(
        command,
        cwd=tmp_path,
        env=env,
        db_url=db_url,
        also="SELECT 1 FROM powertools_queue_limits",
    )
    assert run.nodes == [{"name": "Oban", "node": "cli-limits-1"}], run.output
    stored = query(
        db_url,
        "SELECT queue, global_limit, global_partitioned, rate_allowed, rate_period, "
        "rate_partitioned, partition_fields, partition_keys, declared_by "
        "FROM powertools_queue_limits",
    )
    assert stored == [
        {
            "queue": "exports",
            "global_limit": 1,
            "global_partitioned": True,
            "rate_allowed": 100,
            "rate_period": 60,
            "rate_partitioned": False,
            "partition_fields": ["args"],
            "partition_keys": ["customer_id"],
            "declared_by": "cli-limits-1",
        }
    ], run.output


def test_a_bad_limit_option_in_oban_toml_stops_the_node_with_the_option_named(
    db_url: str, tmp_path: Path
) -> None:
    command, env = _limits_project(tmp_path, db_url, "exports = { limit = 4, global_limit = 0 }")
    run = run_oban_start(command, cwd=tmp_path, env=env, db_url=db_url)
    assert run.nodes == []  # nothing started
    assert run.returncode != 0
    assert "queues.exports.global_limit: must be at least 1, got 0" in run.output
    assert query(db_url, "SELECT count(*) AS n FROM powertools_queue_limits") == [{"n": 0}]
