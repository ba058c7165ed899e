"""`oban-powertools explain JOB_ID`: the explainer from a terminal, as text or JSON,
behind the host's auth seam (actor_for_cli, then view_jobs)."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from oban_powertools.cli import main
from tests.support import explain_scenarios as scenarios
from tests.support.db import run_async

CONFIG = "examples.fastapi_host.powertools_config:build_config"


@pytest.fixture
def example_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr("examples.fastapi_host.settings.DATABASE_URL", db_url)
    return db_url


def prepare(url: str, name: str) -> scenarios.Expect:
    async def run() -> scenarios.Expect:
        async with await psycopg.AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row
        ) as conn:
            return await scenarios.SCENARIOS[name](conn)

    return run_async(run())


def explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["explain", *args, "--config", CONFIG])
    return result.exit_code, result.output


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_each_reason_as_json(example_db: str, name: str) -> None:
    expect = prepare(example_db, name)
    code, output = explain(str(expect.job_id), "--actor", "ops-viewer", "--json")
    assert code == 0, output
    body = json.loads(output)
    if expect.code is None:
        assert not any(r["blocking"] for r in body["reasons"])
        text = body["summary"]
    else:
        (reason,) = [r for r in body["reasons"] if r["code"] == expect.code]
        text = "\n".join(f"{e['label']}: {e['value']}" for e in reason["evidence"])
    for snippet in expect.evidence:
        assert snippet in text, output


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_each_reason_as_text(example_db: str, name: str) -> None:
    expect = prepare(example_db, name)
    code, output = explain(str(expect.job_id), "--actor", "ops-demo")
    assert code == 0, output
    for snippet in expect.evidence:
        assert snippet in output, output
    if expect.code is not None:
        assert "next [" in output


def test_a_missing_job_exits_nonzero(example_db: str) -> None:
    code, output = explain("424242", "--actor", "ops-demo")
    assert code == 1 and "no job 424242" in output


@pytest.mark.parametrize(
    ("actor", "message"),
    [("ops-guest", "unauthorized"), ("nobody", "knows no operator 'nobody'")],
)
def test_the_auth_seam_decides(example_db: str, actor: str, message: str) -> None:
    expect = prepare(example_db, "global_limit")
    code, output = explain(str(expect.job_id), "--actor", actor)
    assert code != 0 and message in output and "Running" not in output
