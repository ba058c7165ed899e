"""Building a batch: its jobs and its callbacks.

Pure: nothing here touches the database. :meth:`Batch.jobs` marks every job with the
batch's id (``meta.batch_id``: immutable, so the ack path knows a job belongs to a
batch without a lookup) and hands the :class:`BatchPlan` to Powertools' insert hook in
``job.extra["batch"]``.

Callbacks, and when each is enqueued (once all the batch's jobs finished; each at most
once, and only the kinds given):

``on_completed``
    every job completed;
``on_exhausted``
    every job finished and at least one did not complete (discarded or cancelled);
``on_cancelled``
    every job finished and at least one was cancelled (so a batch with a cancelled job
    enqueues both ``on_exhausted`` and ``on_cancelled`` when both are given).

A job's first finish is the one counted: an operator's retry of a finished job does not
change its batch's counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from oban.job import Job

from ..errors import BatchCallbackUnknown, BatchError, CompositeNotInserted

if TYPE_CHECKING:
    from psycopg import AsyncConnection

BATCH_KEY = "batch_id"
EXTRA_KEY = "batch"
# A callback job's meta: which callback of which batch it is (not batch_id: a callback
# is not one of the batch's jobs).
CALLBACK_KEY = "batch_callback"
CALLBACK_OF_KEY = "batch_callback_of"
CALLBACK_KINDS = ("on_completed", "on_exhausted", "on_cancelled")
INSERTED_MARK = "batch_inserted"


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """The callback job to insert, as resolved at build time (JSON-ready)."""

    worker: str
    queue: str
    args: Mapping[str, Any]
    meta: Mapping[str, Any]
    max_attempts: int
    priority: int
    tags: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "queue": self.queue,
            "args": dict(self.args),
            "meta": dict(self.meta),
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True, eq=False)
class BatchPlan:
    id: UUID
    name: str
    total: int
    callbacks: Mapping[str, CallbackSpec] = field(default_factory=dict)


def callbacks_due(
    callbacks: Iterable[str], *, total: int, completed: int, cancelled: int, discarded: int
) -> list[str]:
    """The callback kinds a finished batch enqueues (see the module docstring), among
    the ``callbacks`` it has."""
    if completed + cancelled + discarded < total:
        return []
    due = ["on_completed"] if completed == total else ["on_exhausted"]
    if cancelled > 0:
        due.append("on_cancelled")
    given = set(callbacks)
    return [kind for kind in due if kind in given]


def callback_batch_id(job: Job) -> UUID | None:
    """The batch a callback job was enqueued for (None for any other job)."""
    value = (job.meta or {}).get(CALLBACK_OF_KEY)
    return None if value is None else UUID(str(value))


def _resolve(batch: str, kind: str, worker: Any, args: Mapping[str, Any]) -> CallbackSpec:
    from oban.worker import WorkerResolutionError, resolve_worker, worker_name

    if isinstance(worker, str):
        if not worker.strip():
            raise BatchCallbackUnknown(batch, kind, worker, "is empty")
        try:
            cls = resolve_worker(worker)
        except WorkerResolutionError as error:
            raise BatchCallbackUnknown(
                batch, kind, worker, f"cannot be resolved: {error}"
            ) from None
    elif isinstance(worker, type):
        cls = worker
    else:
        raise BatchError(
            f"batch {batch!r}: {kind} must be a worker class or its import path, got "
            f"{type(worker).__name__}"
        )
    new = getattr(cls, "new", None)
    if not callable(new) or not callable(getattr(cls, "process", None)):
        raise BatchCallbackUnknown(
            batch, kind, worker_name(cls), "is not an oban worker (decorate it with @worker)"
        )
    job = new(dict(args))
    if not isinstance(job, Job):
        raise BatchCallbackUnknown(batch, kind, worker_name(cls), "builds no Job with new()")
    if job.extra:
        raise BatchError(
            f"batch {batch!r}: {kind}: the callback worker's options "
            f"{sorted(job.extra)} (unique, chain, ...) are not supported on a callback"
        )
    return CallbackSpec(
        worker=job.worker,
        queue=job.queue,
        args=dict(job.args),
        meta=dict(job.meta),
        max_attempts=job.max_attempts,
        priority=job.priority,
        tags=tuple(job.tags),
    )


class Batch:
    """A set of jobs with callbacks. ``on_completed`` / ``on_exhausted`` /
    ``on_cancelled``: a worker class or its import path (resolved now: an unknown one
    raises :class:`~oban_powertools.errors.BatchCallbackUnknown`), enqueued with
    ``callback_args``; the callback job's ``meta.batch_callback_of`` names the batch.

    ::

        batch = Batch(name="import", on_completed=Notify, on_exhausted=Alert)
        batch.add(*(Row.new({"row": n}) for n in range(10_000)))
        await batch.enqueue(oban)
    """

    def __init__(
        self,
        name: str = "batch",
        *,
        on_completed: Any = None,
        on_exhausted: Any = None,
        on_cancelled: Any = None,
        callback_args: Mapping[str, Any] | None = None,
        id: UUID | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise BatchError(f"a batch name must be a non-empty string, got {name!r}")
        if callback_args is not None and not isinstance(callback_args, Mapping):
            raise BatchError(f"batch {name!r}: callback_args must be a mapping")
        self.name = name
        self.id = UUID(str(id)) if id is not None else uuid4()
        given = {
            "on_completed": on_completed,
            "on_exhausted": on_exhausted,
            "on_cancelled": on_cancelled,
        }
        self.callbacks: dict[str, CallbackSpec] = {
            kind: _resolve(name, kind, worker, callback_args or {})
            for kind, worker in given.items()
            if worker is not None
        }
        self._jobs: list[Job] = []

    def add(self, *jobs: Job) -> Batch:
        for job in jobs:
            if not isinstance(job, Job):
                raise BatchError(
                    f"batch {self.name!r}: add() takes jobs (Worker.new(...)), got "
                    f"{type(job).__name__}"
                )
            if job.id is not None:
                raise BatchError(
                    f"batch {self.name!r}: job {job.id} is already inserted; build a new job"
                )
            if BATCH_KEY in job.meta or any(job is mine for mine in self._jobs):
                raise BatchError(
                    f"batch {self.name!r}: this job is already in batch "
                    f"{job.meta.get(BATCH_KEY, self.id)}; build a new job for each batch"
                )
            if (job.extra or {}).get("unique") is not None:
                raise BatchError(
                    f"batch {self.name!r}: a unique job cannot be in a batch (build it "
                    "with unique=None)"
                )
            self._jobs.append(job)
        return self

    def plan(self) -> BatchPlan:
        if not self._jobs:
            raise BatchError(f"batch {self.name!r} has no jobs")
        return BatchPlan(self.id, self.name, len(self._jobs), dict(self.callbacks))

    def jobs(self) -> list[Job]:
        """The jobs to insert in one batch (``oban.enqueue_many(*batch.jobs())``), each
        marked with the batch and carrying its plan."""
        plan = self.plan()
        for job in self._jobs:
            job.meta = {**job.meta, BATCH_KEY: str(self.id)}
            job.extra = {**(job.extra or {}), EXTRA_KEY: plan}
        return list(self._jobs)

    async def enqueue(self, oban: Any, *, conn: AsyncConnection[Any] | Any = None) -> list[Job]:
        """Insert the batch and its jobs atomically (in the caller's transaction with
        ``conn=``) through ``oban.enqueue_many``; returns the inserted jobs."""
        inserted: list[Job] = await oban.enqueue_many(self.jobs(), conn=conn)
        if not all((job.extra or {}).get(INSERTED_MARK) for job in inserted):
            raise CompositeNotInserted(
                f"batch {self.name!r} reached oban's own insert: the Powertools hooks are "
                "not installed in this process (build powertools.oban_options() or import "
                "oban_powertools.oban_cli before enqueueing). Its jobs were inserted, its "
                "callbacks will not fire."
            )
        return inserted

    def __repr__(self) -> str:
        return f"Batch({self.name!r}, id={self.id}, jobs={len(self._jobs)})"
