"""The Prometheus exporter (the ``[prometheus]`` extra): a collector, and a plain ASGI app.

Two sources, both bounded in cardinality (labels are queue, worker, state, action and
outcome only; never ids or args):

* the database, read once per scrape (:mod:`oban_powertools.read_models.metrics`): jobs
  by queue and state, limiter limits and use, cron entries, scheduler lag and recent
  slots, recent audited actions. These describe the whole cluster, so any one process
  may export them;
* this process's telemetry (:class:`ProcessMetrics`, attached once per process): job
  duration and queue-wait histograms and executions from oban's ``oban.job.stop`` and
  ``oban.job.exception`` events, and the action pipeline's events. They describe the jobs
  this process ran and the actions it handled: scrape every node.

``/ops/jobs/metrics`` serves them behind the same auth seam as every page
(``view_metrics``). A host may instead register :class:`PowertoolsCollector` in its own
registry (``await collector.refresh()`` before each exposition, or
``collector.refresh_every(seconds)``), or mount :func:`metrics_app` where its scrapers
reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ExtraNotInstalled

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.metrics import Counter, Histogram
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the extra is in the dev group
    raise ExtraNotInstalled("prometheus", "The Prometheus exporter", "prometheus-client") from exc

from oban import telemetry as oban_telemetry
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..actions.pipeline import CONFIRMED, DENIED, FAILED, PREVIEWED
from ..read_models.metrics import (
    DEFAULT_WINDOW,
    MAX_QUEUES,
    MetricsSnapshot,
    metrics_snapshot,
)

if TYPE_CHECKING:
    from ..powertools import Powertools

__all__ = [
    "MAX_WORKERS",
    "PowertoolsCollector",
    "ProcessMetrics",
    "metrics_app",
    "process_metrics",
]

MAX_WORKERS = 100  # worker labels per process; later workers are exported as "other"
OTHER = "other"
# Job durations from milliseconds to an hour, queue waits from milliseconds to a day.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900, 3600)
WAIT_BUCKETS = (0.005, 0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400)
JOB_EVENTS = ["oban.job.stop", "oban.job.exception"]


class _Capped:
    """At most ``cap`` distinct label values; the rest become ``other``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        with self._lock:
            if len(self.seen) >= self.cap:
                return OTHER
            self.seen.add(value)
        return value


class ProcessMetrics:
    """This process's job and action telemetry as Prometheus metrics (one per process:
    oban's handlers are process-global)."""

    def __init__(self) -> None:
        self.queues = _Capped(MAX_QUEUES)
        self.workers = _Capped(MAX_WORKERS)
        self.duration = Histogram(
            "oban_powertools_job_duration_seconds",
            "How long job executions ran in this process, by queue and resulting state.",
            ["queue", "state"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.queue_wait = Histogram(
            "oban_powertools_job_queue_wait_seconds",
            "From a job's scheduled_at to its attempt, for jobs this process ran.",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=None,
        )
        self.executions = Counter(
            "oban_powertools_job_executions",
            "Job executions in this process by queue, worker and resulting state.",
            ["queue", "worker", "state"],
            registry=None,
        )
        self.actions = Counter(
            "oban_powertools_actions",
            "Pipeline outcomes in this process: previewed, confirmed, denied, expired, drifted.",
            ["action", "outcome"],
            registry=None,
        )
        self.handler_id = f"oban-powertools-prometheus-{id(self)}"

    def attach(self) -> None:
        oban_telemetry.attach(self.handler_id, JOB_EVENTS, self._on_job)
        oban_telemetry.attach(
            self.handler_id,
            [PREVIEWED.name, CONFIRMED.name, DENIED.name, FAILED.name],
            self._on_action,
        )

    def detach(self) -> None:
        oban_telemetry.detach(self.handler_id)

    def _on_job(self, _name: str, meta: dict[str, Any]) -> None:
        job = meta["job"]
        queue = self.queues(str(job.queue))
        state = str(meta.get("state") or "unknown")
        self.duration.labels(queue, state).observe(meta["duration"] / 1e9)
        self.queue_wait.labels(queue).observe(max(0, meta["queue_time"]) / 1e9)
        self.executions.labels(queue, self.workers(str(job.worker)), state).inc()

    def _on_action(self, name: str, meta: dict[str, Any]) -> None:
        outcome = meta.get("outcome") or name.rpartition(".")[2]
        self.actions.labels(str(meta["action"]), str(outcome)).inc()

    def collect(self) -> Iterator[Metric]:
        for metric in (self.duration, self.queue_wait, self.executions, self.actions):
            yield from metric.collect()


_PROCESS: ProcessMetrics | None = None
_PROCESS_LOCK = threading.Lock()


def process_metrics() -> ProcessMetrics:
    """This process's job and action metrics, attached to telemetry on first use."""
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = ProcessMetrics()
            _PROCESS.attach()
        return _PROCESS


def _families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    jobs = GaugeMetricFamily(
        "oban_powertools_jobs",
        f"Jobs by queue and state (planner estimate above 1000; at most {MAX_QUEUES} queues).",
        labels=["queue", "state"],
    )
    for queue, states in sorted(snapshot.jobs.items()):
        for state, value in states.items():
            jobs.add_metric([queue, state], value)
    yield jobs
    yield GaugeMetricFamily(
        "oban_powertools_queues_omitted",
        f"Queues beyond the first {MAX_QUEUES} (by name), not exported.",
        value=snapshot.queues_omitted,
    )
    limit = GaugeMetricFamily(
        "oban_powertools_limiter_global_limit", "A limited queue's global limit.", labels=["queue"]
    )
    running = GaugeMetricFamily(
        "oban_powertools_limiter_running",
        "A limited queue's jobs executing on every node (what the global limit counts).",
        labels=["queue"],
    )
    rate = GaugeMetricFamily(
        "oban_powertools_limiter_rate_allowed",
        "A limited queue's starts allowed per rate window.",
        labels=["queue"],
    )
    started = GaugeMetricFamily(
        "oban_powertools_limiter_rate_started",
        "A limited queue's starts in the current rate window.",
        labels=["queue"],
    )
    saturated = GaugeMetricFamily(
        "oban_powertools_limiter_saturated",
        "1 while a limit holds the queue's jobs back.",
        labels=["queue"],
    )
    for use in snapshot.limiters:
        if use.global_limit is not None:
            limit.add_metric([use.queue], use.global_limit)
        running.add_metric([use.queue], use.running)
        if use.rate_allowed is not None:
            rate.add_metric([use.queue], use.rate_allowed)
            started.add_metric([use.queue], use.started)
        saturated.add_metric([use.queue], 1 if use.saturated else 0)
    yield from (limit, running, rate, started, saturated)
    cron = snapshot.cron
    entries = GaugeMetricFamily(
        "oban_powertools_cron_entries", "Cron entries by state.", labels=["state"]
    )
    entries.add_metric(["active"], cron.active)
    entries.add_metric(["paused"], cron.paused)
    yield entries
    if cron.scheduler_lag is not None:
        yield GaugeMetricFamily(
            "oban_powertools_cron_scheduler_lag_seconds",
            "How long ago the minute after the last one a leader evaluated began (0: current).",
            value=cron.scheduler_lag,
        )
    slots = GaugeMetricFamily(
        "oban_powertools_cron_recent_slots",
        f"Cron slots of the last {snapshot.window} s by outcome (skipped_* and failed: missed).",
        labels=["outcome"],
    )
    for outcome, n in sorted(cron.slots.items()):
        slots.add_metric([outcome], n)
    yield slots
    if cron.max_decision_lag is not None:
        yield GaugeMetricFamily(
            "oban_powertools_cron_decision_lag_seconds",
            f"The latest live slot decisions' worst lag (claimed_at - slot_at), last {snapshot.window} s.",
            value=cron.max_decision_lag,
        )
    actions = GaugeMetricFamily(
        "oban_powertools_audit_recent_events",
        f"Audit events of the last {snapshot.window} s by action name and outcome (every node).",
        labels=["action", "outcome"],
    )
    for (action, outcome), n in sorted(snapshot.actions.items()):
        actions.add_metric([action, outcome], n)
    yield actions
    lifeline = snapshot.lifeline
    orphaned = GaugeMetricFamily(
        "oban_powertools_jobs_orphaned",
        "Executing jobs whose producer stopped heartbeating (the lifeline rescues them).",
        labels=["queue"],
    )
    stuck = GaugeMetricFamily(
        "oban_powertools_jobs_stuck",
        "Executing jobs on a live producer past stuck_after_seconds (reported, not touched).",
        labels=["queue"],
    )
    # Every queue the jobs gauge names gets a sample (0 when clear), so an alert on
    # "orphaned > 0" has a series to watch before the first orphan appears.
    queues = sorted(set(snapshot.jobs) | set(lifeline.by_queue))[:MAX_QUEUES]
    for queue in queues:
        counts = lifeline.by_queue.get(queue)
        orphaned.add_metric([queue], counts.orphaned if counts else 0)
        stuck.add_metric([queue], counts.stuck if counts else 0)
    yield orphaned
    yield stuck
    yield GaugeMetricFamily(
        "oban_powertools_orphaned_producers",
        "Producers (node, queue) with orphaned jobs: each is a node that died.",
        value=lifeline.orphaned_producers,
    )
    yield GaugeMetricFamily(
        "oban_powertools_lifeline_capped",
        "1 when the lifeline read hit its scan limit: the counts are lower bounds.",
        value=1 if lifeline.capped else 0,
    )


class PowertoolsCollector(Collector):
    """The exporter's metrics for one Powertools. Register it in any registry; call
    :meth:`refresh` (async: it reads the database) before each exposition, or start
    :meth:`refresh_every`. ``collect`` is synchronous, as prometheus-client wants."""

    def __init__(
        self,
        powertools: Powertools,
        *,
        window: int = DEFAULT_WINDOW,
        process: ProcessMetrics | None = None,
    ) -> None:
        self.powertools = powertools
        self.window = window
        self.process = process or process_metrics()
        self.snapshot: MetricsSnapshot | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> MetricsSnapshot:
        config = self.powertools.config
        self.snapshot = await metrics_snapshot(
            self.powertools.db,
            lifeline_grace=config.lifeline_grace_seconds,
            stuck_after=config.stuck_after_seconds,
            window=self.window,
        )
        return self.snapshot

    def refresh_every(self, seconds: float) -> asyncio.Task[None]:
        """Refresh in the background on the running loop until :meth:`stop_refreshing`."""

        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await self.refresh()
                await asyncio.sleep(seconds)

        self._task = asyncio.get_running_loop().create_task(loop(), name="powertools-metrics")
        return self._task

    def stop_refreshing(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from _families(self.snapshot)
        yield from self.process.collect()


def exposition(collector: PowertoolsCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return bytes(generate_latest(registry))


async def render(collector: PowertoolsCollector) -> Response:
    await collector.refresh()
    return Response(exposition(collector), media_type=CONTENT_TYPE_LATEST)


def metrics_app(powertools: Powertools, *, window: int = DEFAULT_WINDOW) -> Any:
    """A plain ASGI app serving the metrics at any path, without the auth seam: mount it
    only where scrapers (not browsers) reach it. The Powertools is started on first use."""
    collector = PowertoolsCollector(powertools, window=window)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await powertools.start()
        response = await render(collector)
        await response(scope, receive, send)

    return app
