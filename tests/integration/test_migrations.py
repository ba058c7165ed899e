"""The migration runner against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.rows import dict_row

from oban_powertools.cli import main
from oban_powertools.db import migrate

OUR_TABLES = {
    "powertools_audit_events",
    "powertools_previews",
    "powertools_cron_entries",
    "powertools_cron_slots",
    "powertools_scheduler_coverage",
    "powertools_queue_states",
    "powertools_schema_versions",
}


def schema_snapshot(url: str, schema: str = "public") -> dict[str, object]:
    """Tables, columns, indexes and versions: what 'no change' is compared on."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY 1, 2",
            (schema,),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1",
            (schema,),
        ).fetchall()
        versions = conn.execute(
            f"SELECT version, applied_at FROM {schema}.powertools_schema_versions ORDER BY 1"
        ).fetchall()
    return {"columns": columns, "indexes": indexes, "versions": versions}


def tables(url: str, schema: str = "public") -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def test_fresh_database_gets_oban_schema_and_ours(fresh_db_url: str) -> None:
    ran = asyncio.run(migrate.apply(fresh_db_url))
    assert [m.version for m in ran] == [m.version for m in migrate.available()]
    assert {"oban_jobs", "oban_leaders", "oban_producers"} | OUR_TABLES <= tables(fresh_db_url)


def test_migrate_twice_changes_nothing(fresh_db_url: str) -> None:
    asyncio.run(migrate.apply(fresh_db_url))
    before = schema_snapshot(fresh_db_url)
    assert asyncio.run(migrate.apply(fresh_db_url)) == []
    assert schema_snapshot(fresh_db_url) == before


def test_two_concurrent_migrates_end_in_the_same_state(fresh_db_url: str) -> None:
    async def both() -> list[list[migrate.Migration]]:
        return list(await asyncio.gather(migrate.apply(fresh_db_url), migrate.apply(fresh_db_url)))

    first, second = asyncio.run(both())
    # Exactly one run applied the migrations; the other found them applied.
    assert sorted([len(first), len(second)]) == [0, len(migrate.available())]
    statuses = asyncio.run(migrate.status(fresh_db_url))
    assert all(s.applied for s in statuses)


def test_rollback_then_reapply(fresh_db_url: str) -> None:
    asyncio.run(migrate.apply(fresh_db_url))
    latest = migrate.available()[-1]
    reverted = asyncio.run(migrate.rollback(fresh_db_url))
    assert reverted is not None and reverted.version == latest.version
    statuses = {s.version: s.applied for s in asyncio.run(migrate.status(fresh_db_url))}
    assert statuses[latest.version] is False
    if latest.version == 1:
        assert "powertools_audit_events" not in tables(fresh_db_url)
    # oban's own schema is never rolled back by us.
    assert "oban_jobs" in tables(fresh_db_url)
    ran = asyncio.run(migrate.apply(fresh_db_url))
    assert [m.version for m in ran] == [latest.version]
    assert OUR_TABLES <= tables(fresh_db_url)


def test_rollback_with_nothing_applied(fresh_db_url: str) -> None:
    assert asyncio.run(migrate.rollback(fresh_db_url)) is None


def test_prefix_schema_holds_both_obans_tables_and_ours(fresh_db_url: str) -> None:
    asyncio.run(migrate.apply(fresh_db_url, prefix="ops"))
    assert {"oban_jobs", "oban_producers"} | OUR_TABLES <= tables(fresh_db_url, "ops")
    assert not (OUR_TABLES & tables(fresh_db_url, "public"))
    assert "oban_jobs" not in tables(fresh_db_url, "public")
    assert asyncio.run(migrate.apply(fresh_db_url, prefix="ops")) == []
    # A second prefix in the same database is independent.
    asyncio.run(migrate.apply(fresh_db_url, prefix="ops_two"))
    assert OUR_TABLES <= tables(fresh_db_url, "ops_two")


def test_audit_rows_cannot_be_updated_deleted_or_truncated(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO powertools_audit_events (action, command, resource_type, resource_id,"
            " principal_id, principal_type, principal_label, surface, outcome)"
            " VALUES ('cron.paused', 'pause_cron_entry', 'cron_entry', 'nightly_sync',"
            " 'ops-demo', 'user', 'Ops Demo', 'web', 'succeeded')"
        )
        for statement in (
            "UPDATE powertools_audit_events SET reason = 'rewritten'",
            "DELETE FROM powertools_audit_events",
            "TRUNCATE powertools_audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)  # type: ignore[arg-type]
        count = conn.execute("SELECT count(*) FROM powertools_audit_events").fetchone()
        assert count == (1,)


def test_cli_migrate_status_and_rollback(fresh_db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["migrate", "--database-url", fresh_db_url])
    assert result.exit_code == 0, result.output
    assert "migration(s) applied" in result.output
    result = runner.invoke(main, ["migrate", "--database-url", fresh_db_url])
    assert result.exit_code == 0 and "is current" in result.output
    result = runner.invoke(main, ["migrate", "--status", "--database-url", fresh_db_url])
    assert result.exit_code == 0 and "0001 foundation" in result.output
    assert "pending" not in result.output
    result = runner.invoke(main, ["migrate", "--rollback", "--database-url", fresh_db_url])
    assert result.exit_code == 0 and "rolled back" in result.output
    result = runner.invoke(main, ["migrate", "--status", "--database-url", fresh_db_url])
    assert "pending" in result.output


def test_cli_migrate_errors_clearly_without_database() -> None:
    result = CliRunner().invoke(main, ["migrate"], env={"DATABASE_URL": ""})
    assert result.exit_code != 0
    assert "database_url: missing" in result.output
    result = CliRunner().invoke(
        main, ["migrate", "--database-url", "postgresql://nobody@127.0.0.1:1/none"]
    )
    assert result.exit_code != 0 and "cannot reach the database" in result.output
    result = CliRunner().invoke(
        main, ["migrate", "--database-url", "postgresql://x@127.0.0.1/db", "--prefix", "bad;drop"]
    )
    assert result.exit_code != 0 and "not a plain schema name" in result.output


# -- migrations that run outside a transaction (CREATE INDEX CONCURRENTLY) -------------


def index_states(url: str, schema: str = "public") -> dict[str, bool]:
    """Index name -> valid, for the schema's indexes."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchall()
    return {name: valid for name, valid in rows}


def with_extra(monkeypatch: pytest.MonkeyPatch, *extra: migrate.Migration) -> None:
    real = migrate.available()
    monkeypatch.setattr(migrate, "available", lambda: [*real, *extra])


CONCURRENT = migrate.Migration(
    9001,
    "concurrent_probe",
    "-- powertools: no-transaction\n"
    "CREATE TABLE IF NOT EXISTS probe (v integer);\n"
    "-- a comment; with a semicolon\n"
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS probe_v_index ON probe (v);\n",
    "-- powertools: no-transaction\n"
    "DROP INDEX CONCURRENTLY IF EXISTS probe_v_index;\nDROP TABLE IF EXISTS probe;\n",
)


def test_library_indexes_are_built_valid(fresh_db_url: str) -> None:
    asyncio.run(migrate.apply(fresh_db_url))
    states = index_states(fresh_db_url)
    for name in ("powertools_audit_events_targets_index", "powertools_oban_jobs_attempted_index"):
        assert states.get(name) is True, name


def test_no_transaction_migration_runs_statement_by_statement(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_extra(monkeypatch, CONCURRENT)
    assert CONCURRENT.up_in_transaction is False and CONCURRENT.down_in_transaction is False
    ran = asyncio.run(migrate.apply(fresh_db_url))
    assert ran[-1].version == 9001
    assert index_states(fresh_db_url)["probe_v_index"] is True
    assert asyncio.run(migrate.apply(fresh_db_url)) == []
    reverted = asyncio.run(migrate.rollback(fresh_db_url))
    assert reverted is not None and reverted.version == 9001
    assert "probe_v_index" not in index_states(fresh_db_url)
    assert "probe" not in tables(fresh_db_url)


def test_an_invalid_index_from_a_failed_concurrent_build_is_rebuilt(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_extra(monkeypatch, CONCURRENT)
    asyncio.run(migrate.apply(fresh_db_url))
    asyncio.run(migrate.rollback(fresh_db_url))
    # Duplicates make the unique concurrent build fail part way: PostgreSQL leaves the
    # index behind, INVALID, and the migration is not recorded.
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (v integer)")
        conn.execute("INSERT INTO probe VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        asyncio.run(migrate.apply(fresh_db_url))
    assert index_states(fresh_db_url)["probe_v_index"] is False
    assert not any(
        s.version == 9001 and s.applied for s in asyncio.run(migrate.status(fresh_db_url))
    )
    # Fixed data: the re-run drops the invalid index and builds it properly, where IF NOT
    # EXISTS alone would have kept the broken one forever.
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM probe")
    ran = asyncio.run(migrate.apply(fresh_db_url))
    assert [m.version for m in ran] == [9001]
    assert index_states(fresh_db_url)["probe_v_index"] is True


def test_concurrent_runs_with_a_concurrent_index_build_do_not_deadlock(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second run waits for the lock without holding a snapshot, which the first run's
    # CREATE INDEX CONCURRENTLY would otherwise wait for (see db/migrate.py).
    with_extra(monkeypatch, CONCURRENT)

    async def three() -> list[list[migrate.Migration]]:
        return list(await asyncio.gather(*(migrate.apply(fresh_db_url) for _ in range(3))))

    results = asyncio.run(three())
    assert sorted(len(r) for r in results) == [0, 0, len(migrate.available())]
    assert index_states(fresh_db_url)["probe_v_index"] is True


def test_split_statements_keeps_quotes_dollar_quotes_and_comments_whole() -> None:
    text = (
        "-- powertools: no-transaction\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT 'a;b' $body$;\n"
        "/* block; comment */ SELECT 'it''s; fine', \"odd;name\";\n"
        "SELECT $$x;y$$;\n"
        "-- trailing comment only;\n"
    )
    statements = migrate.split_statements(text)
    assert len(statements) == 3
    assert statements[0].endswith("$body$ SELECT 'a;b' $body$")
    assert "'it''s; fine', \"odd;name\"" in statements[1]
    assert statements[2] == "SELECT $$x;y$$"
