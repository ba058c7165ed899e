"""Cron entries declared in code, and writing them to the database.

Two ways to declare an entry, both ``source='code'``:

* the explicit API, for everything oban's decorator cannot say (args, overlap and
  catch-up policies, a chosen name)::

      from oban_powertools.cron.declarations import declare
      from oban_powertools.cron.entries import CronEntrySpec

      declare(CronEntrySpec(name="nightly_sync", worker="app.jobs.NightlySync",
                            expression="0 3 * * *", timezone="Europe/Berlin",
                            overlap_policy="skip", catch_up_policy="latest"))

* oban's own ``@worker(cron=...)`` / ``@job(cron=...)``, imported unchanged so existing
  code keeps working when Powertools' scheduler takes over from oban's.

Naming rule for imported oban declarations: oban gives a cron declaration no name, so the
entry is named after the worker's class (or function) name in snake_case, without the
module: ``app.jobs.NightlySync`` becomes ``nightly_sync``, ``app.jobs.send_digest`` stays
``send_digest``. The rule depends only on the worker, so the name is stable across
deploys and nodes. Two declarations that end up with the same name are an error at start
(no silent renaming, which would orphan an entry's pause state and history): give one of
them an explicit name with :func:`declare` and drop ``cron=`` from its worker.

Syncing only creates and updates the declared entries. An entry that is no longer
declared is left alone (with its pause state and history): processes that share a
database may declare different entries (a web process often declares none), so absence
from one process's code is not a reason to delete or pause anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..db import Conn
from ..db.queries import Statements
from ..errors import CronEntryError
from .entries import CronEntrySpec, restart_evaluation, upsert_entry

__all__ = [
    "SyncResult",
    "clear_declarations",
    "code_entries",
    "declare",
    "declared",
    "entry_name_for_worker",
    "oban_declarations",
    "sync_declarations",
]

_declared: list[CronEntrySpec] = []

Q = Statements(cron_entries="definitions")

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def declare(spec: CronEntrySpec) -> CronEntrySpec:
    """Register a code entry; it is written to the database when a runtime starts.

    Declaring the same spec again is a no-op (modules may be imported twice); declaring a
    different spec under an existing name raises :class:`CronEntryError`.
    """
    if not isinstance(spec, CronEntrySpec):
        raise TypeError(f"declare() takes a CronEntrySpec, got {type(spec).__name__}")
    if spec.source != "code":
        raise CronEntryError(
            f"cron entry {spec.name!r}: declared entries are code entries; "
            "leave source at its default ('code')"
        )
    for existing in _declared:
        if existing.name == spec.name:
            if existing == spec:
                return spec
            raise CronEntryError(
                f"cron entry {spec.name!r} is already declared with a different definition"
            )
    _declared.append(spec)
    return spec


def declared() -> list[CronEntrySpec]:
    """A copy of the entries registered with :func:`declare`."""
    return list(_declared)


def clear_declarations() -> None:
    """Forget every :func:`declare` registration (tests)."""
    _declared.clear()


def entry_name_for_worker(worker: str) -> str:
    """The entry name an oban cron declaration of ``worker`` gets (see the module doc)."""
    last = worker.rsplit(".", 1)[-1]
    return _CAMEL_BOUNDARY.sub("_", last).lower()


def oban_declarations(default_timezone: str = "Etc/UTC") -> list[CronEntrySpec]:
    """oban's ``@worker(cron=...)`` / ``@job(cron=...)`` declarations as entry specs.

    ``default_timezone`` plays the part of oban's ``scheduler={"timezone": ...}`` for
    declarations without a zone of their own. The job's queue, priority, max_attempts and
    tags come from the worker's decorator options, as oban's scheduler would build them
    (``Worker.new()``); args are always empty, as in oban.
    """
    # oban exposes its cron registry only through this private module; runtime.hooks pins
    # the version range this is tested against.
    from oban._scheduler import cron_hash, scheduled_entries
    from oban.worker import worker_name

    specs: list[CronEntrySpec] = []
    for entry in scheduled_entries():
        worker = worker_name(entry.worker_cls)
        worker_cls: Any = entry.worker_cls  # decorated by @worker: it has new()
        try:
            job: Any = worker_cls.new()  # what oban's scheduler builds for each run
        except TypeError as exc:
            raise CronEntryError(
                f"cannot take over the cron declaration of {worker}: building its job "
                f"without arguments fails ({exc}). Give the function defaults, or declare "
                "the entry with declare(CronEntrySpec(args=...)) and drop cron=."
            ) from exc
        opts: dict[str, Any] = {}
        if entry.timezone is not None:
            opts["timezone"] = str(entry.timezone)
        name = entry_name_for_worker(worker)
        try:
            spec = CronEntrySpec(
                name=name,
                worker=worker,
                expression=entry.expression.input,
                queue=job.queue,
                timezone=opts.get("timezone", default_timezone),
                priority=job.priority,
                max_attempts=job.max_attempts,
                tags=tuple(job.tags),
                source="code",
                metadata={
                    "declared_by": "oban cron=",
                    "oban_cron_name": cron_hash(entry.expression.input, worker, opts),
                },
            )
        except ValueError as exc:
            raise CronEntryError(
                f"cannot take over the cron declaration of {worker} as entry {name!r}: {exc}. "
                "Declare it explicitly with oban_powertools.cron.declarations.declare() "
                "and drop cron= from the worker."
            ) from exc
        specs.append(spec)
    return specs


def code_entries(
    explicit: Iterable[CronEntrySpec] | None = None,
    *,
    include_oban: bool = True,
    default_timezone: str = "Etc/UTC",
) -> list[CronEntrySpec]:
    """Every code entry: ``explicit`` (default: :func:`declared`) plus oban's, by name.

    Raises :class:`CronEntryError` naming both sides when two declarations share a name.
    """
    specs = list(declared() if explicit is None else explicit)
    origins = {spec.name: "declare()" for spec in specs}
    seen: dict[str, CronEntrySpec] = {}
    for spec in specs:
        if spec.name in seen and seen[spec.name] != spec:
            raise CronEntryError(f"cron entry {spec.name!r} is declared twice with declare()")
        seen[spec.name] = spec
    if include_oban:
        for spec in oban_declarations(default_timezone):
            if spec.name in seen:
                raise CronEntryError(
                    f"cron entry name {spec.name!r} is declared twice: by "
                    f"{origins.get(spec.name, '@worker(cron=...)')} and by @worker(cron=...) "
                    f"on {spec.worker}. Give one an explicit name with "
                    "oban_powertools.cron.declarations.declare(CronEntrySpec(name=...)) "
                    "and drop cron= from that worker."
                )
            origins[spec.name] = f"@worker(cron=...) on {spec.worker}"
            seen[spec.name] = spec
    return [seen[name] for name in sorted(seen)]


@dataclass(frozen=True, slots=True)
class SyncResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def _definition(spec: CronEntrySpec) -> tuple[Any, ...]:
    # The same columns ``upsert_entry`` (cron_entries.sql) compares, as the database stores them.
    return (
        spec.source,
        spec.worker,
        spec.queue,
        dict(spec.args),
        {"priority": spec.priority, "max_attempts": spec.max_attempts, "tags": list(spec.tags)},
        spec.expression,
        spec.timezone,
        spec.overlap_policy,
        spec.catch_up_policy,
        spec.max_catch_up,
        dict(spec.metadata),
    )


async def sync_declarations(conn: Conn, specs: Sequence[CronEntrySpec]) -> SyncResult:
    """Create or update ``specs`` in one transaction; idempotent, safe on many nodes at once.

    Pause state, slots and history are kept. An entry whose expression or time zone
    changed starts its schedule over from now (see ``entries.restart_evaluation``).
    """
    ordered = sorted(specs, key=lambda s: s.name)
    names = [s.name for s in ordered]
    if len(set(names)) != len(names):
        raise CronEntryError("sync_declarations: the same entry name is given twice")
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    if not ordered:
        return SyncResult(created, updated, unchanged)
    async with conn.transaction():
        # Locking in name order keeps concurrent syncs from several nodes deadlock-free.
        cur = await conn.execute(Q.definitions, {"names": names})
        current = {row["name"]: row for row in await cur.fetchall()}
        redefined: list[str] = []
        for spec in ordered:
            row = current.get(spec.name)
            if row is None:
                created.append(spec.name)
            else:
                stored = (
                    row["source"],
                    row["worker"],
                    row["queue"],
                    row["args"],
                    row["job_options"],
                    row["expression"],
                    row["timezone"],
                    row["overlap_policy"],
                    row["catch_up_policy"],
                    row["max_catch_up"],
                    row["metadata"],
                )
                if stored == _definition(spec):
                    unchanged.append(spec.name)
                    continue
                updated.append(spec.name)
                if (row["expression"], row["timezone"]) != (spec.expression, spec.timezone):
                    redefined.append(spec.name)
            await upsert_entry(conn, spec)
        await restart_evaluation(conn, redefined)
    return SyncResult(created, updated, unchanged)
