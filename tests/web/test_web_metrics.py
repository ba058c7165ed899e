"""The Prometheus exporter: scraped through ``/ops/jobs/metrics`` after a known workload
(jobs in queues, a limiter, a cron slot, audited actions, jobs really run by an oban node
in this process), parsed with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from oban import Oban, worker
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.actions import errors
from oban_powertools.runtime.scheduler import CronScheduler
from oban_powertools.web.metrics import (
    MAX_WORKERS,
    OTHER,
    PowertoolsCollector,
    ProcessMetrics,
    metrics_app,
)
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, USERS, insert_job, insert_producer, seed_cron, seed_lifeline

EXEC_QUEUE = "metrics_exec"

type Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@worker(queue=EXEC_QUEUE)
class MeteredJob:
    async def process(self, job: Any) -> None:
        if job.args.get("fail"):
            raise RuntimeError("planned failure")


class Leader:
    is_leader = True


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, (
        f"{name}{labels} not exported; have {sorted(k for k in samples if k[0] == name)}"
    )
    return samples[key]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:  # type: ignore[type-arg]
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as opened:
        yield opened


async def workload(powertools: Powertools, conn: Any, pool: Any) -> None:
    """Known jobs, a limiter, a cron slot, audited actions and executed jobs."""
    await insert_producer(conn, queue="mail")
    await insert_producer(conn, queue="reports")
    for _ in range(3):
        await insert_job(conn, queue="mail", state="available")
    for _ in range(2):
        await insert_job(conn, queue="mail", state="retryable", attempt=1)
    await insert_job(conn, queue="reports", state="executing", attempt=1)
    operator, viewer = USERS["ops-demo"], USERS["ops-viewer"]
    await powertools.start()
    await powertools.pipeline.run(
        operator,
        "set_queue_limits",
        "reports",
        reason="protect the reporting database",
        params={"global_limit": 1, "rate_allowed": 100, "rate_period": 60},
    )
    with pytest.raises(errors.Unauthorized):
        await powertools.pipeline.preview(viewer, "pause_queue", "mail")
    await seed_cron(conn, name="every_minute", expression="* * * * *")
    scheduler = CronScheduler(powertools.db, leader=Leader(), node="metrics-node")
    await scheduler.evaluate(now=datetime.now(UTC))
    oban = Oban(pool=pool, node="metrics-node", queues={EXEC_QUEUE: 2})
    await oban.start()
    try:
        await oban.enqueue_many(
            MeteredJob.new({"n": 1}), MeteredJob.new({"n": 2}), MeteredJob.new({"fail": True})
        )

        async def ran() -> bool:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM oban_jobs WHERE queue = %s"
                " AND state IN ('completed', 'retryable')",
                (EXEC_QUEUE,),
            )
            row = await cur.fetchone()
            return bool(row["n"] == 3)

        await eventually(ran, within=15, what="the three metered jobs ran")
    finally:
        await oban.stop()


async def test_scrape_reports_the_known_workload(
    powertools: Powertools,
    conn: Any,
    pool: Any,
    as_user: Callable[..., httpx.AsyncClient],
) -> None:
    viewer = as_user("ops-viewer")
    before = parse((await viewer.get(f"{MOUNT}/metrics")).text)

    def executed(samples: Samples, state: str) -> float:
        key = (
            "oban_powertools_job_executions_total",
            (
                ("queue", EXEC_QUEUE),
                ("state", state),
                ("worker", MeteredJob.__module__ + ".MeteredJob"),
            ),
        )
        return samples.get(key, 0.0)

    await workload(powertools, conn, pool)
    response = await viewer.get(f"{MOUNT}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)

    assert value(samples, "oban_powertools_jobs", queue="mail", state="available") == 3
    assert value(samples, "oban_powertools_jobs", queue="mail", state="retryable") == 2
    assert value(samples, "oban_powertools_jobs", queue="mail", state="executing") == 0
    assert value(samples, "oban_powertools_jobs", queue="reports", state="executing") == 1
    assert value(samples, "oban_powertools_queues_omitted") == 0

    assert value(samples, "oban_powertools_limiter_global_limit", queue="reports") == 1
    assert value(samples, "oban_powertools_limiter_running", queue="reports") == 1
    assert value(samples, "oban_powertools_limiter_saturated", queue="reports") == 1
    assert value(samples, "oban_powertools_limiter_rate_allowed", queue="reports") == 100
    assert value(samples, "oban_powertools_limiter_rate_started", queue="reports") == 0

    assert value(samples, "oban_powertools_cron_entries", state="active") == 1
    assert value(samples, "oban_powertools_cron_entries", state="paused") == 0
    assert value(samples, "oban_powertools_cron_recent_slots", outcome="enqueued") == 1
    assert value(samples, "oban_powertools_cron_scheduler_lag_seconds") == 0
    assert 0 <= value(samples, "oban_powertools_cron_decision_lag_seconds") < 120

    audited = "oban_powertools_audit_recent_events"
    assert value(samples, audited, action="set_queue_limits", outcome="succeeded") == 1
    assert value(samples, audited, action="pause_queue", outcome="denied") == 1

    # This process's telemetry: the pipeline's outcomes and the jobs the node ran.
    for action, outcome in (
        ("set_queue_limits", "previewed"),
        ("set_queue_limits", "confirmed"),
        ("pause_queue", "denied"),
    ):
        counter = ("oban_powertools_actions_total", (("action", action), ("outcome", outcome)))
        assert samples[counter] - before.get(counter, 0.0) == 1, counter
    assert executed(samples, "completed") - executed(before, "completed") == 2
    assert executed(samples, "retryable") - executed(before, "retryable") == 1
    duration = "oban_powertools_job_duration_seconds_count"
    assert value(samples, duration, queue=EXEC_QUEUE, state="completed") >= 2
    assert value(samples, duration, queue=EXEC_QUEUE, state="retryable") >= 1
    waits = value(samples, "oban_powertools_job_queue_wait_seconds_count", queue=EXEC_QUEUE)
    assert waits >= 3
    # No label carries an id or args: only the bounded vocabulary.
    labels = {name for _, pairs in samples for name, _ in pairs}
    assert labels <= {"queue", "state", "worker", "action", "outcome", "le"}


async def test_scrape_reports_orphaned_and_stuck_jobs_as_the_pages_do(
    powertools: Powertools, conn: Any, as_user: Callable[..., httpx.AsyncClient]
) -> None:
    """Two jobs of a producer silent for 5 minutes, one healthy, one running 2 hours on a
    live node (stuck_after defaults to 15 minutes); a clear queue still has its series."""
    await seed_lifeline(conn)
    await insert_producer(conn, queue="mail")
    await insert_job(conn, queue="mail", state="available")
    samples = parse((await as_user("ops-viewer").get(f"{MOUNT}/metrics")).text)
    assert value(samples, "oban_powertools_jobs_orphaned", queue="exports") == 2
    assert value(samples, "oban_powertools_jobs_stuck", queue="exports") == 0
    assert value(samples, "oban_powertools_jobs_orphaned", queue="reports") == 0
    assert value(samples, "oban_powertools_jobs_stuck", queue="reports") == 1
    assert value(samples, "oban_powertools_jobs_orphaned", queue="mail") == 0
    assert value(samples, "oban_powertools_jobs_stuck", queue="mail") == 0
    assert value(samples, "oban_powertools_orphaned_producers") == 1
    assert value(samples, "oban_powertools_lifeline_capped") == 0


async def test_scrape_is_refused_like_a_page(as_user: Callable[..., httpx.AsyncClient]) -> None:
    anonymous = await as_user().get(f"{MOUNT}/metrics")
    assert anonymous.status_code == 401 and "oban_powertools_jobs" not in anonymous.text
    guest = await as_user("ops-guest").get(f"{MOUNT}/metrics")
    assert guest.status_code == 403 and "oban_powertools_jobs" not in guest.text


async def test_the_collector_in_a_host_registry_and_the_plain_app(
    powertools: Powertools, conn: Any
) -> None:
    await insert_producer(conn, queue="mail")
    await insert_job(conn, queue="mail", state="available")
    await powertools.start()
    collector = PowertoolsCollector(powertools)
    registry = CollectorRegistry()
    registry.register(collector)
    await collector.refresh()
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "oban_powertools_jobs", queue="mail", state="available") == 1

    # Or refreshed in the background, for a host's own exposition.
    background = PowertoolsCollector(powertools)
    background.refresh_every(0.05)
    try:
        await eventually(lambda: background.snapshot is not None, what="a background refresh")
    finally:
        background.stop_refreshing()
    assert background.snapshot is not None and background.snapshot.jobs["mail"]["available"] == 1

    app = metrics_app(powertools)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as plain:
        response = await plain.get("/")
    assert response.status_code == 200
    assert value(parse(response.text), "oban_powertools_jobs", queue="mail", state="available") == 1


class FakeJob:
    def __init__(self, queue: str, worker: str) -> None:
        self.queue = queue
        self.worker = worker


def test_worker_labels_are_capped() -> None:
    metrics = ProcessMetrics()  # not attached: fed directly
    for n in range(MAX_WORKERS + 5):
        metrics._on_job(
            "oban.job.stop",
            {
                "job": FakeJob("q", f"app.Worker{n}"),
                "duration": 1000,
                "queue_time": 0,
                "state": "completed",
            },
        )
    registry = CollectorRegistry()
    registry.register(metrics)  # type: ignore[arg-type]
    samples = parse(generate_latest(registry).decode())
    workers = {
        dict(pairs)["worker"]
        for name, pairs in samples
        if name == "oban_powertools_job_executions_total"
    }
    assert len(workers) == MAX_WORKERS + 1 and OTHER in workers
    other = (
        "oban_powertools_job_executions_total",
        (("queue", "q"), ("state", "completed"), ("worker", OTHER)),
    )
    assert samples[other] == 5
