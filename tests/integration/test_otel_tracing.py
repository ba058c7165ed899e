"""OpenTelemetry: a web request, the job it enqueued and the job's execution share one
trace. A real Starlette request (httpx's ASGI transport) enqueues; a real oban node in
this process runs the jobs; spans are read from the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from oban import Oban, worker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oban_powertools.contrib.otel import TRACE_CONTEXT_META, Instrumentation, instrument
from tests.support.waiting import eventually

QUEUE = "otel_traced"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def instrumented(provider: TracerProvider) -> Iterator[Instrumentation]:
    instrumentation = instrument(tracer_provider=provider)
    try:
        yield instrumentation
    finally:
        instrumentation.uninstrument()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:  # type: ignore[type-arg]
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as opened:
        yield opened


def traced_workers(provider: TracerProvider) -> tuple[type, type, type]:
    tracer = provider.get_tracer("tests.worker")

    @worker(queue=QUEUE)
    class Welcome:
        async def process(self, job: Any) -> None:
            with tracer.start_as_current_span("send welcome email"):
                pass

    @worker(queue=QUEUE, max_attempts=3)
    class Flaky:
        async def process(self, job: Any) -> None:
            raise RuntimeError("smtp refused")

    @worker(queue=QUEUE, unique={"period": 300, "fields": ["worker", "args", "meta"]})
    class Digest:
        async def process(self, job: Any) -> None:
            return None

    return Welcome, Flaky, Digest


def request_app(
    provider: TracerProvider, oban: Oban, workers: tuple[type, type, type]
) -> Starlette:
    tracer = provider.get_tracer("tests.web")
    welcome, flaky, digest = workers

    async def signup(request: Request) -> JSONResponse:
        # What an ASGI instrumentation does for every request: a SERVER span, current
        # while the handler runs.
        with tracer.start_as_current_span("POST /signup", kind=SpanKind.SERVER):
            job = await oban.enqueue(welcome.new({"user": 7}))
            failing = await oban.enqueue(flaky.new({"user": 7}))
            first = await oban.enqueue(digest.new({"user": 7}))
            again = await oban.enqueue(digest.new({"user": 7}))
        return JSONResponse(
            {"job": job.id, "failing": failing.id, "digest": first.id, "again": again.id}
        )

    return Starlette(routes=[Route("/signup", signup, methods=["POST"])])


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_request_enqueue_and_execution_share_one_trace(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    instrumented: Instrumentation,
    pool: Any,
) -> None:
    workers = traced_workers(provider)
    oban = Oban(pool=pool, node="otel-node", queues={QUEUE: 2})
    await oban.start()
    try:
        app = request_app(provider, oban, workers)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
            response = await client.post("/signup")
        assert response.status_code == 200
        ids = response.json()

        def executed() -> bool:
            consumers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
            return len(consumers) >= 3  # welcome, the first attempt of flaky, digest

        await eventually(executed, within=15, what="three job executions traced")
    finally:
        await oban.stop()

    (request,) = spans(exporter, "POST /signup")
    trace_id = request.context.trace_id
    publishes = spans(exporter, f"{QUEUE} publish")
    assert len(publishes) == 4
    for publish in publishes:
        assert publish.kind == SpanKind.PRODUCER
        assert publish.context.trace_id == trace_id
        assert publish.parent is not None and publish.parent.span_id == request.context.span_id
        assert publish.attributes is not None
        assert publish.attributes["messaging.system"] == "oban"
        assert publish.attributes["messaging.destination.name"] == QUEUE
        assert publish.attributes["messaging.operation"] == "publish"
    assert {p.attributes["messaging.message.id"] for p in publishes if p.attributes} == {
        str(ids["job"]),
        str(ids["failing"]),
        str(ids["digest"]),
    }
    # The trace context did not make the unique job's second enqueue a new job.
    assert ids["again"] == ids["digest"]

    processed = {
        s.attributes["messaging.message.id"]: s
        for s in spans(exporter, f"{QUEUE} process")
        if s.attributes
    }
    welcome = processed[str(ids["job"])]
    assert welcome.kind == SpanKind.CONSUMER
    assert welcome.context.trace_id == trace_id
    # The parent is the enqueue span of that job, read back from the job's meta.
    by_id = {p.context.span_id: p for p in publishes}
    assert welcome.parent is not None and welcome.parent.span_id in by_id
    assert welcome.attributes is not None
    assert welcome.attributes["messaging.destination.name"] == QUEUE
    assert welcome.attributes["messaging.operation"] == "process"
    assert welcome.attributes["oban.job.worker"].endswith("Welcome")
    assert welcome.attributes["oban.job.attempt"] == 1
    assert welcome.attributes["oban.job.state"] == "completed"
    assert welcome.status.status_code != StatusCode.ERROR
    # The worker's own span nests under the execution span.
    (email,) = spans(exporter, "send welcome email")
    assert email.context.trace_id == trace_id
    assert email.parent is not None and email.parent.span_id == welcome.context.span_id

    flaky = processed[str(ids["failing"])]
    assert flaky.context.trace_id == trace_id
    assert flaky.attributes is not None
    assert flaky.attributes["oban.job.state"] == "retryable"
    assert flaky.status.status_code == StatusCode.ERROR
    (error,) = [e for e in flaky.events if e.name == "exception"]
    assert error.attributes is not None
    assert error.attributes["exception.type"] == "RuntimeError"
    assert error.attributes["exception.message"] == "smtp refused"

    digest = processed[str(ids["digest"])]
    assert digest.context.trace_id == trace_id
    assert digest.attributes is not None and digest.attributes["oban.job.state"] == "completed"


async def test_the_trace_context_is_in_the_jobs_meta(
    provider: TracerProvider, instrumented: Instrumentation, pool: Any
) -> None:
    welcome, _, _ = traced_workers(provider)
    oban = Oban(pool=pool, node="otel-meta", queues={})
    tracer = provider.get_tracer("tests.meta")
    with tracer.start_as_current_span("outer") as outer:
        job = await oban.enqueue(welcome.new({"user": 8}))
    carrier = job.meta[TRACE_CONTEXT_META]
    version, trace_hex, _span, _flags = carrier["traceparent"].split("-")
    assert version == "00" and int(trace_hex, 16) == outer.get_span_context().trace_id


async def test_uninstrument_stops_tracing(
    provider: TracerProvider, exporter: InMemorySpanExporter, pool: Any
) -> None:
    welcome, _, _ = traced_workers(provider)
    instrumentation = instrument(tracer_provider=provider)
    instrumentation.uninstrument()
    oban = Oban(pool=pool, node="otel-off", queues={})
    job = await oban.enqueue(welcome.new({"user": 9}))
    assert TRACE_CONTEXT_META not in (job.meta or {})
    assert exporter.get_finished_spans() == ()
