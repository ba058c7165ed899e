"""Typed workers on a real oban node running their queue, with Powertools' hooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from oban import Oban
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from oban_powertools import ArgsValidationError, DeadlinePassed, Powertools, typed_worker
from oban_powertools.display import Display
from oban_powertools.read_models import job_detail
from oban_powertools.runtime import Runtime
from tests.support.seams import RedactingDisplay
from tests.support.waiting import eventually
from tests.web.helpers import build_powertools, client, host_app

QUEUE = "typed"
CALLS: list[str] = []


@dataclass
class ReportArgs:
    customer_id: int
    rows: int = 3
    fail: bool = False


@typed_worker(queue=QUEUE, args=ReportArgs, max_attempts=2)
class Report:
    def before_process(self, job: Any) -> None:
        CALLS.append("before_process")

    async def perform(self, args: ReportArgs, job: Any) -> dict[str, Any]:
        assert isinstance(args, ReportArgs)  # the typed object, not the JSON
        CALLS.append(f"perform:{args.customer_id}")
        if args.fail:
            raise RuntimeError(f"report for {args.customer_id} failed")
        return {"customer_id": args.customer_id, "rows": args.rows, "file": "report.csv"}

    async def after_process(self, job: Any, result: Any) -> None:
        CALLS.append(f"after_process:{result['rows']}")

    async def on_error(self, job: Any, error: Exception) -> None:
        CALLS.append(f"on_error:{type(error).__name__}")


@dataclass
class SlowArgs:
    seconds: float


@typed_worker(queue=QUEUE, args=SlowArgs)
class Slow:
    async def perform(self, args: SlowArgs, job: Any) -> None:
        CALLS.append("slow:start")
        await asyncio.sleep(args.seconds)
        CALLS.append("slow:end")

    def on_error(self, job: Any, error: Exception) -> None:
        CALLS.append(f"on_error:{type(error).__name__}")


@dataclass
class BigArgs:
    size: int


@typed_worker(queue=QUEUE, args=BigArgs, record_limit=256)
class Big:
    async def perform(self, args: BigArgs, job: Any) -> str:
        return "x" * args.size


@pytest.fixture
async def powertools(db_url: str) -> AsyncIterator[Powertools]:
    pt = build_powertools(db_url)
    try:
        yield pt
    finally:
        await pt.stop()


@pytest.fixture
async def oban(powertools: Powertools) -> AsyncIterator[Oban]:
    CALLS.clear()
    url = powertools.config.database_url
    async with AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool:
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        node = Oban(pool=pool, node="typed-1", queues={QUEUE: 2}, **runtime.oban_options())
        await node.start()
        try:
            yield node
        finally:
            await node.stop()


async def job_row(db_url: str, job_id: int) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT state::text AS state, attempt, max_attempts, errors, meta, args "
            "FROM oban_jobs WHERE id = %s",
            [job_id],
        )
        row = await cur.fetchone()
        assert row is not None
        return row


async def count_jobs(db_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT count(*) FROM oban_jobs")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def settled(db_url: str, job_id: int, state: str) -> dict[str, Any]:
    async def reached() -> bool:
        return (await job_row(db_url, job_id))["state"] == state

    await eventually(reached, within=15, what=f"job {job_id} {state}")
    return await job_row(db_url, job_id)


async def test_enqueue_with_a_wrong_type_names_the_field_and_inserts_nothing(
    db_url: str, oban: Oban
) -> None:
    with pytest.raises(ArgsValidationError) as caught:
        await Report.enqueue({"customer_id": "x"})
    assert str(caught.value) == "ReportArgs.customer_id: expected int, got str 'x'"
    assert caught.value.path == "ReportArgs.customer_id"
    with pytest.raises(ArgsValidationError, match="ReportArgs.rows: expected int"):
        await oban.enqueue_many([Report.new({"customer_id": 1}), Report.new({"customer_id": 2,
                                                                            "rows": 1.5})])  # fmt: skip
    assert await count_jobs(db_url) == 0


async def test_hooks_run_in_order_and_the_result_is_recorded_and_shown(
    db_url: str, oban: Oban, powertools: Powertools
) -> None:
    job = await Report.enqueue(ReportArgs(customer_id=41, rows=7))
    assert job.id is not None
    row = await settled(db_url, job.id, "completed")
    assert CALLS == ["before_process", "perform:41", "after_process:7"]
    assert row["meta"]["recorded"] is True and isinstance(row["meta"]["return"], str)

    await powertools.start()
    detail = await job_detail.job_detail(powertools.db, Display(RedactingDisplay()), job.id)
    assert detail is not None and detail.result_json is not None
    assert '"file": "report.csv"' in detail.result_json and '"rows": 7' in detail.result_json
    async with client(host_app(powertools), "ops-demo") as ops:
        page = (await ops.get(f"/ops/jobs/jobs/{job.id}")).text
    assert 'id="result-title">Result</h2>' in page
    assert "&#34;file&#34;: &#34;report.csv&#34;" in page


async def test_a_failing_perform_runs_on_error_and_oban_retries_as_usual(
    db_url: str, oban: Oban
) -> None:
    job = await Report.enqueue({"customer_id": 5, "fail": True})
    assert job.id is not None
    row = await settled(db_url, job.id, "retryable")
    assert CALLS == ["before_process", "perform:5", "on_error:RuntimeError"]
    assert row["attempt"] == 1 and len(row["errors"]) == 1
    assert "RuntimeError: report for 5 failed" in row["errors"][0]["error"]


async def test_a_record_over_the_limit_is_a_note_and_the_job_completes(
    db_url: str, oban: Oban, powertools: Powertools
) -> None:
    job = await Big.enqueue({"size": 5000})
    assert job.id is not None
    await settled(db_url, job.id, "completed")
    await powertools.start()
    detail = await job_detail.job_detail(powertools.db, Display(RedactingDisplay()), job.id)
    assert detail is not None and detail.result_json is not None
    assert '"truncated": true' in detail.result_json and '"limit": 256' in detail.result_json
    assert "xxxx" not in detail.result_json


async def test_args_that_no_longer_fit_the_schema_are_discarded_once_with_a_readable_error(
    db_url: str, oban: Oban
) -> None:
    # Enqueued under the old schema (no region), then the worker's schema changes: the
    # same worker name now requires a field the stored args do not have.
    @dataclass
    class OldArgs:
        account: int

    @dataclass
    class NewArgs:
        account: int
        region: str

    def declare(schema: type) -> Any:
        class Migrating:
            async def perform(self, args: Any, job: Any) -> None:
                CALLS.append("perform")

        Migrating.__qualname__ = "Migrating"
        return typed_worker(queue="paused", args=schema)(Migrating)

    old = declare(OldArgs)
    job = await old.enqueue({"account": 1})
    assert job.id is not None and job.max_attempts == 20
    declare(NewArgs)  # the deploy: the registry now holds the new schema
    await oban.start_queue(queue="paused", limit=1)
    row = await settled(db_url, job.id, "discarded")
    assert row["attempt"] == 1 and len(row["errors"]) == 1  # once, not 20 times
    assert row["max_attempts"] == 20  # the row keeps its max_attempts
    assert CALLS == []  # perform never saw the stale args
    last_line = row["errors"][0]["error"].strip().splitlines()[-1]
    assert last_line == (
        "oban_powertools.errors.JobArgsInvalid: NewArgs.region: required, missing "
        "(the job's args no longer fit NewArgs; discarded without retrying)"
    )


async def test_a_job_not_started_by_its_deadline_is_cancelled(db_url: str, oban: Oban) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    job = await Report.enqueue({"customer_id": 9}, deadline=past)
    assert job.id is not None
    row = await settled(db_url, job.id, "cancelled")
    assert CALLS == []  # never ran
    assert row["meta"]["deadline_at"] == past.isoformat()
    assert [e["error"] for e in row["errors"]] == ["deadline passed"]


async def test_a_job_running_past_its_deadline_is_cancelled_with_that_reason(
    db_url: str, oban: Oban, powertools: Powertools
) -> None:
    # Long enough for the node to start the job even on a loaded machine; not started by
    # then, it would be cancelled "deadline passed" instead (the assertions say which).
    job = await Slow.enqueue({"seconds": 60}, deadline=timedelta(seconds=4))
    assert job.id is not None
    row = await settled(db_url, job.id, "cancelled")
    assert CALLS == ["slow:start", f"on_error:{DeadlinePassed.__name__}"]
    assert [e["error"] for e in row["errors"]] == ["deadline passed while running"]

    await powertools.start()
    async with client(host_app(powertools), "ops-demo") as ops:
        page = (await ops.get(f"/ops/jobs/jobs/{job.id}")).text
    assert "<dt>Deadline</dt>" in page and "deadline passed while running" in page
