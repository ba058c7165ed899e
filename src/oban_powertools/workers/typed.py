"""``@typed_worker``: an oban worker whose args are a dataclass or a pydantic model.

::

    @typed_worker(queue="exports", args=ExportArgs, deadline=timedelta(minutes=10))
    class Export:
        async def perform(self, args: ExportArgs, job: Job) -> dict[str, int]:
            ...

The class becomes a real oban worker (``@worker`` underneath: registered, resolved by
name when a job runs, ``new``/``enqueue`` as usual, every ``@worker`` option such as
``queue``, ``priority``, ``max_attempts``, ``unique`` or ``cron`` passed through).

``Worker.new(args, deadline=...)`` takes an instance of the schema or a mapping, checks it
(:class:`~oban_powertools.errors.ArgsValidationError` naming the field; nothing is
inserted), stores it as JSON, and adds ``meta.deadline_at`` and ``meta.redact`` (the paths
of sensitive values). When the job runs:

1. its args are checked again; args that no longer fit (the schema changed after the job
   was enqueued) raise :class:`~oban_powertools.errors.JobArgsInvalid`, which
   Powertools' ``executor.wrap_result`` hook turns into a discard (no retries);
2. a job past its deadline is cancelled ("deadline passed") without running;
3. ``before_process(job)``, ``perform(args, job)``, ``after_process(job, result)`` run in
   that order; when one of them raises, ``on_error(job, error)`` runs and the error
   propagates (oban retries or discards as usual). Each may be sync or async;
4. ``perform`` runs under the deadline: still running then, it is cancelled ("deadline
   passed while running"; ``on_error`` gets a
   :class:`~oban_powertools.errors.DeadlinePassed`). A sync ``perform`` cannot be
   interrupted (as with oban's own timeout);
5. a non-None return value is recorded (:mod:`.recorded`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from oban import worker as oban_worker
from oban.job import Cancel, Job, Record, Snooze

from ..display import declare_sensitive_keys
from ..errors import ArgsValidationError, DeadlinePassed, InvalidArgument, JobArgsInvalid
from .deadline import DEADLINE_KEY, NOT_STARTED, WHILE_RUNNING, deadline_at, stored_deadline
from .recorded import RECORD_LIMIT, record
from .schema import ArgsSchema, schema_for
from .sensitive import REDACT_KEY

__all__ = ["TypedSpec", "typed_worker"]

log = logging.getLogger("oban_powertools.workers")

HOOKS = ("before_process", "after_process", "on_error")


@dataclass(frozen=True, slots=True)
class TypedSpec:
    """What ``@typed_worker`` was given, kept on the class as ``__typed_worker__``."""

    schema: ArgsSchema
    deadline: timedelta | None
    record_limit: int


def typed_worker[C: type](
    *,
    args: type,
    deadline: timedelta | None = None,
    record_limit: int = RECORD_LIMIT,
    **options: Any,
) -> Callable[[C], C]:
    """Make a class with ``perform(self, args, job)`` an oban worker with typed args; see
    the module docstring. ``options`` are ``@worker``'s (``queue``, ``unique`` ...)."""
    schema = schema_for(args)
    if deadline is not None and (not isinstance(deadline, timedelta) or deadline <= timedelta(0)):
        raise InvalidArgument(f"deadline={deadline!r}: give a positive timedelta")
    if isinstance(record_limit, bool) or not isinstance(record_limit, int) or record_limit < 64:
        raise InvalidArgument(f"record_limit={record_limit!r}: give a size in bytes (>= 64)")
    spec = TypedSpec(schema, deadline, record_limit)
    # Free text with no job's meta.redact at hand (a bridged Oban Web page) masks these.
    declare_sensitive_keys(schema.sensitive_names())

    def decorate(cls: C) -> C:
        if "process" in cls.__dict__:
            raise InvalidArgument(
                f"{cls.__qualname__}: a typed worker defines perform(self, args, job), "
                "not process (which it provides)"
            )
        if not callable(getattr(cls, "perform", None)):
            raise InvalidArgument(f"{cls.__qualname__}: define perform(self, args, job)")

        async def process(self: Any, job: Job) -> Any:
            return await _run(self, job, spec)

        process.__qualname__ = f"{cls.__qualname__}.process"
        cls.process = process  # type: ignore[attr-defined]
        made = cast(C, oban_worker(**options)(cls))
        oban_new = made.__dict__["new"].__func__

        def new(
            klass: type,
            args: Any = None,
            /,
            *,
            deadline: timedelta | datetime | None = None,
            **params: Any,
        ) -> Job:
            loaded = spec.schema.coerce(args)
            meta = dict(params.pop("meta", None) or {})
            due = deadline_at(deadline if deadline is not None else spec.deadline, _now())
            if due is not None:
                meta[DEADLINE_KEY] = due.isoformat()
            if loaded.redact:
                meta[REDACT_KEY] = loaded.redact
            if meta:
                params["meta"] = meta
            return cast(Job, oban_new(klass, loaded.data, **params))

        new.__doc__ = "A job with these args (an instance of the schema or a mapping), checked."
        made.new = classmethod(new)  # type: ignore[attr-defined]
        made.__typed_worker__ = spec  # type: ignore[attr-defined]
        return made

    return decorate


def _now() -> datetime:
    return datetime.now(UTC)


async def _call(hook: Callable[..., Any] | None, *params: Any) -> None:
    if hook is None:
        return
    result = hook(*params)
    if inspect.isawaitable(result):
        await result


async def _perform(instance: Any, value: Any, job: Job, due: datetime | None) -> Any:
    outcome = instance.perform(value, job)
    if not inspect.isawaitable(outcome):
        return outcome  # sync: ran to the end already, deadline or not
    if due is None:
        return await outcome
    try:
        async with asyncio.timeout((due - _now()).total_seconds()) as scope:
            return await outcome
    except TimeoutError as exc:
        if scope.expired():
            raise DeadlinePassed(
                f"{job.worker}: still running at its deadline {due.isoformat()}"
            ) from exc
        raise


async def _run(instance: Any, job: Job, spec: TypedSpec) -> Any:
    try:
        loaded = spec.schema.load(job.args)
    except ArgsValidationError as exc:
        raise JobArgsInvalid(
            exc.path,
            f"{exc.problem} (the job's args no longer fit {spec.schema.name}; "
            "discarded without retrying)",
        ) from None
    due = stored_deadline(job.meta)
    if due is not None and _now() >= due:
        return Cancel(NOT_STARTED)
    hooks = {name: getattr(instance, name, None) for name in HOOKS}
    try:
        await _call(hooks["before_process"], job)
        result = await _perform(instance, loaded.value, job, due)
        await _call(hooks["after_process"], job, result)
    except Exception as error:
        await _on_error(hooks["on_error"], job, error)
        if isinstance(error, DeadlinePassed):
            return Cancel(WHILE_RUNNING)
        raise
    if result is None or isinstance(result, Cancel | Snooze | Record):
        return result
    return record(result, spec.record_limit)


async def _on_error(hook: Callable[..., Any] | None, job: Job, error: Exception) -> None:
    try:
        await _call(hook, job, error)
    except Exception:
        # The job's own error is what oban must record; a failing hook is only logged.
        log.exception("on_error of %s failed for job %s", job.worker, job.id)
