"""OpenTelemetry tracing for oban jobs (the ``[otel]`` extra): one trace from the request
that enqueued a job to the job's execution.

:func:`instrument` gives

* a ``PRODUCER`` span around every insert (``oban.enqueue``, ``Worker.enqueue``,
  ``enqueue_many``, on a plain or a unique batch), child of whatever span is current (the
  web request's), and the W3C trace context of that span in each job's
  ``meta["trace_context"]`` (``traceparent``, ``tracestate``);
* a ``CONSUMER`` span for every execution in this process, whose parent is the context
  read back from the job's meta, so the request, the enqueue and every attempt of the job
  share one trace id. It is the current span while the worker runs: the worker's own
  spans nest under it. An attempt that raised records the error and ends ``ERROR``.

Attributes follow OpenTelemetry's messaging conventions where they fit:
``messaging.system`` = ``oban``, ``messaging.destination.name`` = the queue,
``messaging.operation`` (``publish`` / ``process``), ``messaging.operation.type``
(``send`` / ``process``), ``messaging.message.id`` = the job id
(``messaging.batch.message_count`` for batches), plus ``oban.job.worker``,
``oban.job.attempt`` and ``oban.job.state`` (the outcome: ``completed``, ``retryable``,
``discarded``, ``cancelled``, ``scheduled`` for a snooze).

The enqueue span rides the ``query.insert_jobs`` hook (installed here if the runtime has
not installed it yet); execution spans come from oban's ``oban.job.start``,
``oban.job.stop`` and ``oban.job.exception`` telemetry, which oban runs inline in the
job's task, so the span can be made current for the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ..errors import ExtraNotInstalled

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:
    raise ExtraNotInstalled("otel", "OpenTelemetry tracing", "opentelemetry-api") from exc

from oban import telemetry as oban_telemetry

from ..runtime import hooks
from ..runtime.instance import install_hooks
from ..telemetry import TRACE_CONTEXT_META

__all__ = ["TRACE_CONTEXT_META", "Instrumentation", "instrument"]

SYSTEM = "oban"
JOB_EVENTS = ["oban.job.start", "oban.job.stop", "oban.job.exception"]


def _job_attributes(job: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": str(job.queue),
        "oban.job.worker": str(job.worker),
    }
    if job.id is not None:
        attributes["messaging.message.id"] = str(job.id)
    return attributes


@dataclass
class Instrumentation:
    """What :func:`instrument` attached; :meth:`uninstrument` takes it off again."""

    tracer: trace.Tracer
    handler_id: str
    # The execution span and context token of each running job, by the Job object.
    _running: dict[int, tuple[Span, object]] = field(default_factory=dict)

    # -- enqueue -------------------------------------------------------------------------

    @contextmanager
    def enqueue(self, jobs: list[Any]) -> Iterator[Callable[[list[Any]], None]]:
        queues = sorted({str(job.queue) for job in jobs})
        destination = queues[0] if len(queues) == 1 else None
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation": "publish",
            "messaging.operation.type": "send",
        }
        if destination is not None:
            attributes["messaging.destination.name"] = destination
        workers = {str(job.worker) for job in jobs}
        if len(workers) == 1:
            attributes["oban.job.worker"] = workers.pop()
        if len(jobs) > 1:
            attributes["messaging.batch.message_count"] = len(jobs)
        name = f"{destination or 'oban'} publish"
        with self.tracer.start_as_current_span(
            name, kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for job in jobs:
                job.meta = {**(job.meta or {}), TRACE_CONTEXT_META: dict(carrier)}

            def inserted(result: list[Any]) -> None:
                if len(result) == 1 and result[0].id is not None:
                    span.set_attribute("messaging.message.id", str(result[0].id))

            yield inserted

    # -- execution -----------------------------------------------------------------------

    def _on_job(self, name: str, meta: dict[str, Any]) -> None:
        job = meta["job"]
        if name == "oban.job.start":
            self._start(job)
        else:
            self._stop(job, meta, failed=name == "oban.job.exception")

    def _start(self, job: Any) -> None:
        carrier = (job.meta or {}).get(TRACE_CONTEXT_META)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        span = self.tracer.start_span(
            f"{job.queue} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                **_job_attributes(job),
                "messaging.operation": "process",
                "messaging.operation.type": "process",
                "oban.job.attempt": int(job.attempt),
            },
        )
        # Current for the worker: oban calls the start and stop handlers in the job's own
        # task, around the worker, so attach and detach pair up in one context.
        token = otel_context.attach(trace.set_span_in_context(span))
        self._running[id(job)] = (span, token)

    def _stop(self, job: Any, meta: dict[str, Any], *, failed: bool) -> None:
        found = self._running.pop(id(job), None)
        if found is None:
            return  # started before instrument()
        span, token = found
        state = str(meta.get("state") or "unknown")
        span.set_attribute("oban.job.state", state)
        if failed:
            error_type = str(meta.get("error_type") or "Exception")
            message = str(meta.get("error_message") or "")
            span.add_event(
                "exception",
                {
                    "exception.type": error_type,
                    "exception.message": message,
                    "exception.stacktrace": str(meta.get("traceback") or ""),
                },
            )
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]

    # -- lifecycle -----------------------------------------------------------------------

    def uninstrument(self) -> None:
        hooks.unobserve_inserts(self.enqueue)
        oban_telemetry.detach(self.handler_id)


def instrument(*, tracer_provider: TracerProvider | None = None) -> Instrumentation:
    """Trace enqueues and executions in this process (see the module docstring). Call it
    once at start-up, in the web process and in every worker process; the spans go to
    ``tracer_provider`` (default: the global one)."""
    install_hooks()
    tracer = trace.get_tracer(
        "oban_powertools", metadata.version("oban-powertools"), tracer_provider=tracer_provider
    )
    instrumentation = Instrumentation(tracer, handler_id="")
    instrumentation.handler_id = f"oban-powertools-otel-{id(instrumentation)}"
    hooks.observe_inserts(instrumentation.enqueue)
    oban_telemetry.attach(instrumentation.handler_id, JOB_EVENTS, instrumentation._on_job)
    return instrumentation
