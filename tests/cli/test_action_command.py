"""`oban-powertools action`: the pipeline from a terminal, surface 'cli'."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from oban_powertools.cli import main
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.db import connect
from tests.support.db import run_async

CONFIG = "examples.fastapi_host.powertools_config:build_config"


@pytest.fixture
def example_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr("examples.fastapi_host.settings.DATABASE_URL", db_url)

    async def seed() -> None:
        conn = await connect(db_url)
        async with conn.transaction():
            await upsert_entry(
                conn,
                CronEntrySpec(
                    name="nightly_sync", worker="app.NightlySync", expression="0 2 * * *"
                ),
            )
        await conn.close()

    run_async(seed())
    return db_url


def rows(url: str, sql: str) -> list[dict[str, object]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def test_pause_from_the_cli(example_db: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "action",
            "pause_cron_entry",
            "nightly_sync",
            "--actor",
            "ops-demo",
            "--reason",
            "upstream outage",
            "--param",
            "expires_in_minutes=60",
            "--yes",
            "--config",
            CONFIG,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Future claims stop until resumed" in result.output and "audit event" in result.output
    (event,) = rows(example_db, "SELECT * FROM powertools_audit_events")
    assert (event["surface"], event["principal_id"], event["reason"]) == (
        "cli",
        "ops-demo",
        "upstream outage",
    )
    (entry,) = rows(example_db, "SELECT paused, pause_expires_at FROM powertools_cron_entries")
    assert entry["paused"] is True and entry["pause_expires_at"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--actor", "ops-viewer", "--reason", "nope nope", "--yes"], "unauthorized"),
        (["--actor", "nobody", "--reason", "nope nope", "--yes"], "knows no operator 'nobody'"),
        (["--actor", "ops-demo", "--yes"], "reason_required"),
        (["--actor", "ops-demo", "--reason", "no terminal"], "pass --yes"),
        (["--actor", "ops-demo", "--param", "junk", "--yes"], "is not KEY=VALUE"),
    ],
)
def test_refusals_change_nothing(example_db: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main, ["action", "pause_cron_entry", "nightly_sync", *args, "--config", CONFIG]
    )
    assert result.exit_code != 0 and message in result.output, result.output
    assert rows(example_db, "SELECT paused FROM powertools_cron_entries") == [{"paused": False}]
    assert rows(
        example_db, "SELECT count(*) AS n FROM powertools_audit_events WHERE outcome = 'succeeded'"
    ) == [{"n": 0}]


def test_seam_without_cli_support_refuses(example_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from examples.fastapi_host.ops_auth import PowertoolsAuth

    monkeypatch.delattr(PowertoolsAuth, "actor_for_cli")
    result = CliRunner().invoke(
        main,
        [
            "action",
            "pause_cron_entry",
            "nightly_sync",
            "--actor",
            "ops-demo",
            "--reason",
            "upstream outage",
            "--yes",
            "--config",
            CONFIG,
        ],
    )
    assert result.exit_code != 0 and "CLI actions are disabled" in result.output


def test_a_queue_repair_from_the_cli_finds_its_own_set(example_db: str) -> None:
    dead = str(uuid.uuid4())
    with psycopg.connect(example_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO oban_producers (uuid, name, node, queue, meta, started_at, updated_at) "
            "VALUES (%s, 'Oban', 'dead-node', 'work', '{}', timezone('UTC', now()), "
            "timezone('UTC', now()) - interval '1 hour')",
            (dead,),
        )
        orphans = [
            conn.execute(
                "INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, "
                "attempted_at, attempted_by) VALUES ('executing', 'work', 'app.Work', '{}', 1, "
                "5, timezone('UTC', now()) - interval '2 hours', %s) RETURNING id",
                (["dead-node", dead],),
            ).fetchone()[0]  # type: ignore[index]
            for _ in range(2)
        ]
    result = CliRunner().invoke(
        main,
        [
            "action",
            "rescue_jobs",
            "--param",
            "queue=work",
            "--param",
            "kind=orphaned",
            "--actor",
            "ops-demo",
            "--reason",
            "dead-node was killed",
            "--yes",
            "--config",
            CONFIG,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "audit event" in result.output
    states = rows(example_db, "SELECT id, state::text AS state FROM oban_jobs ORDER BY id")
    assert states == [{"id": i, "state": "available"} for i in orphans]
    (event,) = rows(
        example_db,
        "SELECT action, surface, reason, outcome FROM powertools_audit_events "
        "WHERE outcome = 'succeeded'",
    )
    assert event == {
        "action": "job.rescued",
        "surface": "cli",
        "reason": "dead-node was killed",
        "outcome": "succeeded",
    }


def test_an_action_given_no_target_is_refused(example_db: str) -> None:
    result = CliRunner().invoke(
        main,
        ["action", "pause_cron_entry", "--actor", "ops-demo", "--reason", "why not", "--yes"]
        + ["--config", CONFIG],
    )
    assert result.exit_code != 0 and "at least one target" in result.output, result.output
    assert rows(example_db, "SELECT paused FROM powertools_cron_entries") == [{"paused": False}]
