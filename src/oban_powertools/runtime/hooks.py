"""The one module that touches oban's private extension registry (``oban._extensions``).

oban-py builds its components through named hooks (``use_ext(name, default, ...)``) in a
process-global registry. Powertools registers eight of them:

``scheduler.build``
    For an instance whose ``scheduler`` config carries a runtime
    (``{"powertools": runtime}``), build Powertools' scheduler *instead of* oban's, so
    code entries (which Powertools imports from oban's ``@worker(cron=...)``) are never
    inserted twice.
``stager.build``
    For an instance whose ``stager`` config carries a runtime, build the stager the
    previous hook (or oban's default) builds from the rest of the config, and return it
    together with the queue-state applier as one looper. This is the hook that receives
    the instance's ``producers``.
``metrics.build``
    For an instance whose ``metrics`` config carries a runtime (metrics are off unless
    the host turns them on), build oban's metrics looper and make its crontab broadcast
    (what Oban Web's cron view shows) list the entries stored in Powertools.
``producer.validate``
    Check every queue's options when oban builds (or scales) a producer: the limiter
    options (``global_limit``, ``rate_limit``) are parsed and a bad or unknown option
    stops the instance with an error naming it (oban would keep a typo silently).
``producer.get_jobs``
    For a producer of an instance with a runtime whose queue has stored limits, fetch
    through the runtime's limiter (:mod:`.limiter`); every other fetch is oban's.
``query.insert_jobs``
    A batch holding chain links (``chain=``) or a :class:`~oban_powertools.batches.Batch`'s
    jobs is inserted by :mod:`.chain_batch_insert` (links and batch rows with the jobs,
    atomically); a batch holding workflow steps is inserted by :mod:`.workflow_insert`
    (the workflow's rows with its jobs, atomically); a batch holding a unique job
    (``unique=`` on its worker or its insert) is inserted by :mod:`.inserter`, in the
    caller's transaction when ``conn=`` is given; every other batch is oban's own
    insert. This hook runs in every process that installed the hooks, enqueuers
    without a runtime included. Insert observers (:func:`observe_inserts`, e.g.
    OpenTelemetry's enqueue span) see every batch before any path inserts it, and the
    inserted jobs after.
``query.ack_jobs``
    Acks of jobs that belong to a composite (a workflow step: ``meta.workflow_id``; a
    chain link: ``meta.chain``; a batch job: ``meta.batch_id``) are
    acked by :mod:`.acks` in one transaction with the composite's follow-up (releasing
    the step's dependents); every other ack is oban's own, untouched.
``lifeline.rescue``
    For an instance with a runtime (found by the instance's ``Query``, which the
    ``scheduler.build`` hook attaches the runtime's lifeline to), run the accurate
    lifeline (:mod:`.lifeline`): only jobs whose producer stopped heartbeating are
    rescued, never one still running on a live node. oban calls it on the leader every
    lifeline interval; other instances get oban's age-based rescue.
``executor.wrap_result``
    A job whose args no longer fit its typed worker's schema
    (:class:`~oban_powertools.errors.JobArgsInvalid`) is discarded at once instead of
    retried: oban's executor discards an error only when ``job.attempt >=
    job.max_attempts``, so the hook lowers the in-memory ``job.max_attempts`` to the
    attempt. Retrying cannot make stale args fit, and oban offers no other way to
    discard from an error. The row's ``max_attempts`` is unchanged (oban's ack writes
    state, errors and meta, never max_attempts). Every other result passes unchanged.

All of them wrap whatever was registered before (``get_ext``/``put_ext``) and hand instances
without a runtime to it untouched, with the config unchanged. The runtime is taken out of
a copy of the config before anything else sees it; the host's dict is not modified.
:func:`install` is idempotent.

Oban Pro for Python registers over the same hooks when it is installed (oban imports it
automatically). Powertools does not chain with Pro: :func:`install` refuses to run when
``oban_pro`` is importable, with an error saying so, rather than silently disabling one
scheduler or the other. The rest of Powertools (pages, pipeline, audit) works either way.

The hook names and signatures are those of oban 0.7; :func:`install` refuses other
versions, and ``tests/integration/test_oban_hooks.py`` asserts each hook is really called.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, ExitStack
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, JobArgsInvalid
from ..limits.options import parse_queue_limits
from . import acks, chain_batch_insert, inserter, workflow_insert
from .lifeline import attach_lifeline, wrap_rescue
from .limiter import FetchRequest

if TYPE_CHECKING:
    from .instance import Runtime

__all__ = [
    "CONFIG_KEY",
    "HOOKS",
    "attach_fetcher",
    "detach_fetcher",
    "ensure_no_oban_pro",
    "install",
    "installed",
    "observe_inserts",
    "queue_options",
    "unobserve_inserts",
    "wrap_ack_jobs",
    "wrap_get_jobs",
    "wrap_insert_jobs",
    "wrap_lifeline_rescue",
    "wrap_metrics_build",
    "wrap_result",
    "wrap_scheduler_build",
    "wrap_stager_build",
    "wrap_validate",
]

CONFIG_KEY = "powertools"
HOOKS = (
    "scheduler.build",
    "stager.build",
    "metrics.build",
    "producer.validate",
    "producer.get_jobs",
    "query.insert_jobs",
    "query.ack_jobs",
    "lifeline.rescue",
    "executor.wrap_result",
)
SUPPORTED_OBAN = (0, 7)
_MARK = "__oban_powertools_hook__"

type Build = Callable[..., Any]


def ensure_no_oban_pro() -> None:
    if "oban_pro" in sys.modules or importlib.util.find_spec("oban_pro") is not None:
        raise ConfigError(
            "oban_pro",
            "is installed, and oban-powertools' runtime does not chain with Oban Pro "
            "(both replace oban's scheduler and stager hooks)",
            "Run Powertools' scheduler without oban_pro installed, or keep Oban Pro and do "
            "not pass powertools.oban_options() to Oban(...); the control plane works "
            "either way",
        )


def _ensure_supported_oban() -> None:
    version = metadata.version("oban")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts != SUPPORTED_OBAN:
        raise ConfigError(
            "oban",
            f"version {version} is not supported by these hooks (they target "
            f"{SUPPORTED_OBAN[0]}.{SUPPORTED_OBAN[1]}.x)",
            "Install oban>=0.7,<0.8 (the range oban-powertools declares).",
        )


def install(resolve: Resolver) -> None:
    """Register Powertools' hooks once per process (later calls change nothing but the
    resolver). ``resolve`` turns a config's ``powertools`` value into its runtime."""
    global _resolve
    ensure_no_oban_pro()
    _ensure_supported_oban()
    from oban._extensions import get_ext, put_ext
    from oban._lifeline import _rescue
    from oban._metrics import build_metrics
    from oban._producer import _get_jobs, _validate
    from oban._query import _ack_jobs, _insert_jobs
    from oban._scheduler import build_scheduler
    from oban._stager import build_stager

    wraps: tuple[tuple[str, Build, Callable[[Build], Build]], ...] = (
        ("scheduler.build", build_scheduler, wrap_scheduler_build),
        ("stager.build", build_stager, wrap_stager_build),
        ("metrics.build", build_metrics, wrap_metrics_build),
        ("producer.validate", _validate, wrap_validate),
        ("producer.get_jobs", _get_jobs, wrap_get_jobs),
        ("query.insert_jobs", _insert_jobs, wrap_insert_jobs),
        ("query.ack_jobs", _ack_jobs, wrap_ack_jobs),
        ("lifeline.rescue", _rescue, wrap_lifeline_rescue),
        ("executor.wrap_result", _unwrapped_result, wrap_result),
    )
    for name, default, wrap in wraps:
        current = get_ext(name, default)
        if not getattr(current, _MARK, False):
            put_ext(name, wrap(current))
    _resolve = resolve


def installed() -> bool:
    from oban._extensions import get_ext

    return all(getattr(get_ext(name, lambda: None), _MARK, False) for name in HOOKS)


# How a runtime is found from what an instance's config holds under CONFIG_KEY (the
# Runtime itself, or an import path from oban.toml). Given by install(), so this module
# needs nothing from the runtime it builds for.
type Resolver = Callable[[Any], Runtime]
_resolve: Resolver | None = None


def _split(config: Mapping[str, Any] | None) -> tuple[Runtime | None, dict[str, Any]]:
    rest = dict(config or {})
    value = rest.pop(CONFIG_KEY, None)
    if value is None:
        return None, rest
    if _resolve is None:
        raise ConfigError(
            CONFIG_KEY,
            "the Powertools hooks were not installed",
            "Build the options with powertools.oban_options() (it installs them), or load "
            "oban_powertools.oban_cli first for `oban start`.",
        )
    return _resolve(value), rest


def _node_of(leader: Any) -> str:
    # The scheduler.build hook gets the leader but not the node name; oban's Leader keeps
    # it in _node. oban's own default is the fallback.
    node = getattr(leader, "_node", None)
    return node if isinstance(node, str) and node else f"{socket.gethostname()}.{os.getpid()}"


def _node_of_producers(producers: Mapping[str, Any]) -> str:
    # The stager.build hook gets no node name; every producer of the instance has it.
    for producer in producers.values():
        node = getattr(producer, "_node", None)
        if isinstance(node, str) and node:
            return node
    return f"{socket.gethostname()}.{os.getpid()}"


def _name_of(leader: Any) -> str:
    # The instance name (oban's ``name``, "Oban" by default), which oban's Leader keeps in
    # _name; it keys oban_leaders and oban_producers rows.
    name = getattr(leader, "_name", None)
    return name if isinstance(name, str) and name else "Oban"


def _prefix_of(query: Any) -> str:
    prefix = getattr(query, "_prefix", "public")
    return prefix if isinstance(prefix, str) else "public"


def wrap_scheduler_build(previous: Build) -> Build:
    """``scheduler.build`` that builds Powertools' scheduler for instances with a runtime."""

    def build(config: dict[str, Any], *, leader: Any, notifier: Any, query: Any) -> Any:
        runtime, rest = _split(config)
        if runtime is None:
            return previous(config, leader=leader, notifier=notifier, query=query)
        scheduler = runtime.build_scheduler(
            rest,
            leader=leader,
            node=_node_of(leader),
            prefix=_prefix_of(query),
            name=_name_of(leader),
        )
        if runtime.lifeline is not None:
            # The lifeline.rescue hook gets only the instance's Query: found by it.
            attach_lifeline(query, runtime.lifeline)
        return scheduler

    setattr(build, _MARK, True)
    build.previous = previous  # type: ignore[attr-defined]
    return build


def wrap_stager_build(previous: Build) -> Build:
    """``stager.build`` that adds the queue-state applier for instances with a runtime."""

    def build(config: dict[str, Any], *, notifier: Any, producers: Any, query: Any) -> Any:
        runtime, rest = _split(config)
        if runtime is None:
            return previous(config, notifier=notifier, producers=producers, query=query)
        stager = previous(rest, notifier=notifier, producers=producers, query=query)
        return runtime.build_stager(
            stager,
            producers=producers,
            notifier=notifier,
            prefix=_prefix_of(query),
            node=_node_of_producers(producers),
        )

    setattr(build, _MARK, True)
    build.previous = previous  # type: ignore[attr-defined]
    return build


def wrap_metrics_build(previous: Build) -> Build:
    """``metrics.build`` that broadcasts the stored cron entries to Oban Web, for
    instances whose ``metrics`` config carries a runtime."""

    def build(
        config: dict[str, Any],
        *,
        leader: Any,
        name: str,
        node: str,
        notifier: Any,
        producers: Any,
        query: Any,
    ) -> Any:
        runtime, rest = _split(config)
        common = {
            "leader": leader,
            "name": name,
            "node": node,
            "notifier": notifier,
            "producers": producers,
            "query": query,
        }
        if runtime is None:
            return previous(config, **common)
        metrics = previous(rest, **common)
        return runtime.build_metrics(metrics, notifier=notifier, name=name, node=node)

    setattr(build, _MARK, True)
    build.previous = previous  # type: ignore[attr-defined]
    return build


def wrap_validate(previous: Build) -> Build:
    """``producer.validate`` that also checks the queue's limiter options."""

    def validate(**params: Any) -> None:
        previous(**params)
        parse_queue_limits(str(params.get("queue")), params)

    setattr(validate, _MARK, True)
    validate.previous = previous  # type: ignore[attr-defined]
    return validate


class Fetcher(Protocol):
    """What the ``producer.get_jobs`` hook hands a limited queue's fetch to."""

    async def ready(self) -> None: ...
    def wants(self, queue: str) -> bool: ...
    async def fetch(self, request: FetchRequest) -> list[Any]: ...


# The limited fetch of each instance with a runtime, by its producers dict (the one oban
# gives the stager.build hook): attached when the stager is built, so that no producer
# of the instance ever fetches before the limiter is ready, and detached when it stops.
_FETCHERS: dict[int, tuple[Mapping[str, Any], Fetcher]] = {}


def attach_fetcher(producers: Mapping[str, Any], fetcher: Fetcher) -> None:
    _FETCHERS[id(producers)] = (producers, fetcher)


def detach_fetcher(producers: Mapping[str, Any]) -> None:
    _FETCHERS.pop(id(producers), None)


def _fetcher_for(producer: Any) -> Fetcher | None:
    queue = producer._queue
    for producers, fetcher in _FETCHERS.values():
        if producers.get(queue) is producer:
            return fetcher
    return None


def wrap_get_jobs(previous: Build) -> Build:
    """``producer.get_jobs`` that fetches limited queues through the runtime's limiter."""

    async def get_jobs(producer: Any) -> Any:
        fetcher = _fetcher_for(producer)
        if fetcher is None:
            return await previous(producer)
        await fetcher.ready()
        if not fetcher.wants(producer._queue):
            return await previous(producer)
        request = FetchRequest(
            queue=producer._queue,
            demand=producer._limit - len(producer._running_jobs),
            node=producer._node,
            uuid=producer._uuid,
            notify=producer.notify,
        )
        return await fetcher.fetch(request)

    setattr(get_jobs, _MARK, True)
    get_jobs.previous = previous  # type: ignore[attr-defined]
    return get_jobs


def queue_options(producers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each producer's queue options as the host gave them (oban keeps the ones it does
    not know, such as the limiter options, in the producer's ``_extra``)."""
    return {
        queue: {"queue": queue, "limit": producer._limit, **producer._extra}
        for queue, producer in producers.items()
    }


# Called with each batch before it is inserted (it may add to the jobs' meta); the
# context manager it returns is left after the insert, and the function it yields is
# given the inserted jobs. An error in the insert passes through the context manager.
type InsertObserver = Callable[[list[Any]], AbstractContextManager[Callable[[list[Any]], None]]]
_INSERT_OBSERVERS: list[InsertObserver] = []


def observe_inserts(observer: InsertObserver) -> None:
    if observer not in _INSERT_OBSERVERS:
        _INSERT_OBSERVERS.append(observer)


def unobserve_inserts(observer: InsertObserver) -> None:
    if observer in _INSERT_OBSERVERS:
        _INSERT_OBSERVERS.remove(observer)


def wrap_insert_jobs(previous: Build) -> Build:
    """``query.insert_jobs`` that inserts workflows with their rows and batches holding
    unique jobs idempotently."""

    async def insert_jobs(query: Any, jobs: list[Any], conn: Any = None) -> Any:
        if not _INSERT_OBSERVERS:
            return await insert(query, jobs, conn)
        with ExitStack() as stack:
            finish = [stack.enter_context(observe(jobs)) for observe in list(_INSERT_OBSERVERS)]
            inserted = await insert(query, jobs, conn)
            for done in finish:
                done(inserted)
            return inserted

    async def insert(query: Any, jobs: list[Any], conn: Any) -> Any:
        if any(chain_batch_insert.is_chain_or_batch(job) for job in jobs):
            from oban._query import unwrap_connection

            return await chain_batch_insert.insert_jobs(
                jobs,
                prefix=_prefix_of(query),
                pool=query._pool,
                conn=None if conn is None else await unwrap_connection(conn),
            )
        if any(workflow_insert.plan_of(job) is not None for job in jobs):
            from oban._query import unwrap_connection

            return await workflow_insert.insert_jobs(
                jobs,
                prefix=_prefix_of(query),
                pool=query._pool,
                conn=None if conn is None else await unwrap_connection(conn),
            )
        uniques = [inserter.unique_of(job) for job in jobs]
        if not any(uniques):
            return await previous(query, jobs, conn)
        from oban._query import unwrap_connection

        return await inserter.insert_jobs(
            jobs,
            uniques,
            prefix=_prefix_of(query),
            pool=query._pool,
            conn=None if conn is None else await unwrap_connection(conn),
        )

    setattr(insert_jobs, _MARK, True)
    insert_jobs.previous = previous  # type: ignore[attr-defined]
    return insert_jobs


def wrap_ack_jobs(previous: Build) -> Build:
    """``query.ack_jobs`` that acks composite jobs together with their follow-ups."""

    async def ack_jobs(query: Any, acks_: list[Any]) -> Any:
        return await acks.ack_jobs(query, acks_, previous=previous, schema=_prefix_of(query))

    setattr(ack_jobs, _MARK, True)
    ack_jobs.previous = previous  # type: ignore[attr-defined]
    return ack_jobs


def wrap_lifeline_rescue(previous: Build) -> Build:
    """``lifeline.rescue`` that runs the accurate lifeline for instances with a runtime."""
    rescue = wrap_rescue(previous)
    setattr(rescue, _MARK, True)
    rescue.previous = previous  # type: ignore[attr-defined]
    return rescue


def _unwrapped_result(job: Any, result: Any) -> Any:
    # oban's own default for executor.wrap_result (an inline lambda in _executor.py).
    return result


def wrap_result(previous: Build) -> Build:
    """``executor.wrap_result`` that discards, without retries, a job whose args no longer
    fit its typed worker's schema (see the module docstring for why max_attempts)."""

    def wrap(job: Any, result: Any) -> Any:
        result = previous(job, result)
        if isinstance(result, JobArgsInvalid):
            job.max_attempts = max(1, job.attempt)
        return result

    setattr(wrap, _MARK, True)
    wrap.previous = previous  # type: ignore[attr-defined]
    return wrap
