"""A database where `migrate` never ran: 503 naming the migrations, then 200 once migrated,
without restarting the app; and the Cron page when no node runs the runtime."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.db import migrate
from oban_powertools.runtime import Runtime
from tests.support.waiting import eventually
from tests.web.helpers import build_powertools, client, host_app, seed_cron

ALL_PENDING = "0001 foundation"


async def test_an_unmigrated_database_answers_503_until_migrated(
    fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    powertools = build_powertools(fresh_db_url)
    app = host_app(powertools)
    try:
        with caplog.at_level(logging.WARNING):
            await powertools.start()  # the host boots; one warning says what to run
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "is not current" in warning.getMessage()
        assert "Run `oban-powertools migrate`" in warning.getMessage()
        assert warning.exc_info is None  # a line, not a traceback
        caplog.clear()

        async with client(app, "ops-demo") as operator, client(app) as anonymous:
            for path in ("/ops/jobs/", "/ops/jobs/cron", "/ops/jobs/jobs", "/ops/jobs/audit"):
                page = await operator.get(path)
                assert page.status_code == 503, path
                assert "Run <code>oban-powertools migrate</code>" in page.text
                assert f"<code>{ALL_PENDING}</code>" in page.text
                assert "oban&#39;s tables are missing" in page.text
                assert "Something went wrong" not in page.text
            api = await operator.post("/ops/jobs/api/actions/preview", json={})
            assert api.status_code == 503
            error = api.json()["error"]
            assert error["code"] == "schema_not_current"
            assert "Run `oban-powertools migrate`" in error["message"]
            assert ALL_PENDING in error["message"]
            # Anonymous visitors get the usual sign-in answer, not the schema's details.
            assert (await anonymous.get("/ops/jobs/")).status_code == 401
            # Every request asked again, but the problem was logged once, at start-up.
            assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []

            await migrate.apply(fresh_db_url)
            page = await operator.get("/ops/jobs/")  # no restart
            assert page.status_code == 200
            assert "migrate" not in page.text
    finally:
        await powertools.stop()


async def test_a_current_schema_is_asked_once(db_url: str) -> None:
    powertools = build_powertools(db_url)
    app = host_app(powertools)
    asked = 0
    check = powertools.schema.check

    async def counting() -> Any:
        nonlocal asked
        asked += 1
        return await check()

    powertools.schema.check = counting  # type: ignore[method-assign]
    try:
        async with client(app, "ops-demo") as operator:
            assert (await operator.get("/ops/jobs/cron")).status_code == 200
            assert powertools.schema.current  # found current (at start)
            asked = 0
            for _ in range(3):
                assert (await operator.get("/ops/jobs/cron")).status_code == 200
        assert asked == 0  # healthy requests do not ask again
    finally:
        await powertools.stop()


async def test_an_older_schema_names_the_missing_migration(db_url: str) -> None:
    latest = await migrate.rollback(db_url)
    assert latest is not None
    powertools = build_powertools(db_url)
    try:
        async with client(host_app(powertools), "ops-demo") as operator:
            page = await operator.get("/ops/jobs/queues")
        assert page.status_code == 503
        assert f"<code>{latest.version:04d} {latest.name}</code>" in page.text
        assert "oban&#39;s tables are missing" not in page.text
        assert "<code>0001 foundation</code>" not in page.text
    finally:
        await powertools.stop()


CRON_NOTE = "No node runs the Powertools runtime"


async def test_the_cron_page_says_when_no_node_runs_the_runtime(
    powertools: Powertools, as_user: Any, conn: Any
) -> None:
    operator: httpx.AsyncClient = as_user("ops-demo")
    empty = await operator.get("/ops/jobs/cron")
    assert empty.status_code == 200
    assert CRON_NOTE in empty.text and "**powertools.oban_options()" in empty.text
    assert "stored only once a node with the runtime starts" in empty.text

    await seed_cron(conn)
    listed = await operator.get("/ops/jobs/cron")
    assert CRON_NOTE in listed.text and "nothing schedules these entries" in listed.text

    async with AsyncConnectionPool(
        powertools.config.database_url, min_size=1, max_size=4, open=False
    ) as pool:
        oban = Oban(
            pool=pool, node="worker-1", queues={"default": 1},
            **Runtime(powertools, declarations=[]).oban_options(),
        )  # fmt: skip
        await oban.start()
        try:
            await eventually(lambda: oban.is_leader, what="worker-1 leads")
            running = await operator.get("/ops/jobs/cron")
            assert running.status_code == 200 and CRON_NOTE not in running.text
        finally:
            await oban.stop()
