"""Powertools inside an oban instance: the cron scheduler and the queue-state applier.

A host wires it with the keyword arguments :meth:`Runtime.oban_options` returns (or
``Powertools.oban_options()``, which builds the runtime)::

    oban = Oban(pool=pool, queues={"default": 10}, node="web-1",
                **powertools.oban_options())

Those are ``scheduler={"powertools": runtime}`` and ``stager={"powertools": runtime}``;
:mod:`.hooks` (installed by ``oban_options``) recognises them when oban builds its
components, so that instance gets

* Powertools' :class:`~.scheduler.CronScheduler` *instead of* oban's scheduler: the
  code entries (``declare()`` and oban's ``@worker(cron=...)``) are synced to the
  database when the instance starts and are scheduled from there, never by oban too;
* oban's own stager wrapped together with a :class:`~.applier.QueueStateApplier`,
  which applies the stored queue decisions before the stager first wakes the producers;
* the accurate :class:`~.lifeline.Lifeline` in place of oban's age-based rescue (oban's
  loop calls it on the leader through the ``lifeline.rescue`` hook): only jobs whose
  producer stopped heartbeating within ``Config.lifeline_grace_seconds`` are rescued.

Each runtime belongs to one Oban instance (call ``oban_options()`` once per instance) and
keeps a small connection pool of its own, open while the instance runs. Its prefix must
be the instance's prefix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..cron.declarations import SyncResult, code_entries, sync_declarations
from ..cron.entries import CronEntrySpec
from ..cron.timezones import load_timezone
from ..db import Database
from ..errors import ConfigError, CronTimezoneError
from . import hooks
from .applier import NotifierLike, ProducerLike, QueueStateApplier
from .chain_repair import ChainRepair
from .lifeline import Lifeline
from .limiter import Limiter, declared_limits
from .presence import Presence
from .rollup import DEFAULT_RETENTION, JobRollup
from .scheduler import DEFAULT_GRACE, Clock, CronScheduler, LeaderLike
from .services import MetricsService, SchedulerService, StagerService
from .workflow_repair import WorkflowRepair

if TYPE_CHECKING:
    from ..powertools import Powertools

__all__ = ["Runtime", "install_hooks", "resolve_runtime", "runtime_at"]

logger = logging.getLogger(__name__)

CONFIG_KEY = "powertools"


class Runtime:
    """What Powertools runs inside one oban instance. See the module docstring.

    ``declarations``: the code entries to sync (default: everything registered with
    ``cron.declarations.declare`` when the instance starts); ``import_oban_cron`` also
    takes over oban's ``@worker(cron=...)`` declarations. ``clock``, ``grace`` and
    ``leader_poll_interval`` tune the scheduler's loop; ``queue_state_interval`` is how
    often (seconds) stored queue decisions are re-read; ``workflow_repair_interval`` how
    often the leader looks for missed workflow releases. ``rollup_retention`` is how long
    the charts' per-minute job rollups are kept (:mod:`.rollup`; default 8 days).
    """

    def __init__(
        self,
        powertools: Powertools,
        *,
        declarations: Sequence[CronEntrySpec] | None = None,
        import_oban_cron: bool = True,
        clock: Clock | None = None,
        grace: timedelta = DEFAULT_GRACE,
        leader_poll_interval: float = 1.0,
        queue_state_interval: float = 5.0,
        workflow_repair_interval: float = 5.0,
        pool_max_size: int = 3,
        rollup_retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        if leader_poll_interval <= 0:
            raise ConfigError("leader_poll_interval", "must be positive", "Use e.g. 1.0 (seconds).")
        if queue_state_interval <= 0:
            raise ConfigError("queue_state_interval", "must be positive", "Use e.g. 5.0 (seconds).")
        if workflow_repair_interval <= 0:
            raise ConfigError(
                "workflow_repair_interval", "must be positive", "Use e.g. 5.0 (seconds)."
            )
        if not isinstance(grace, timedelta) or grace < timedelta(0):
            raise ConfigError("grace", "must be a non-negative timedelta", "Use e.g. 3 minutes.")
        if not isinstance(rollup_retention, timedelta) or rollup_retention < timedelta(days=1):
            raise ConfigError(
                "rollup_retention",
                "must be a timedelta of at least a day",
                "Use e.g. timedelta(days=8): the charts show the last day.",
            )
        self.powertools = powertools
        self._rollup_retention = rollup_retention
        self.declarations = None if declarations is None else list(declarations)
        self.import_oban_cron = import_oban_cron
        self.default_timezone = "Etc/UTC"
        self._clock = clock
        self._grace = grace
        self._leader_poll_interval = leader_poll_interval
        self._queue_state_interval = queue_state_interval
        self._workflow_repair_interval = workflow_repair_interval
        self._pool_max_size = pool_max_size
        self.database = self._new_database()
        self._opened = False
        self._users = 0
        self._lock = asyncio.Lock()
        self.scheduler: CronScheduler | None = None
        self.applier: QueueStateApplier | None = None
        self.limiter: Limiter | None = None
        self.workflow_repair: WorkflowRepair | None = None
        self.lifeline: Lifeline | None = None
        self.rollup: JobRollup | None = None

    @property
    def prefix(self) -> str:
        return self.powertools.config.prefix

    # -- wiring -------------------------------------------------------------------------

    def oban_options(
        self,
        *,
        scheduler: Mapping[str, Any] | None = None,
        stager: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | bool | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments to pass to ``Oban(...)``; ``scheduler``, ``stager`` and
        ``metrics`` are oban's own sub-configs (e.g. ``stager={"interval": 1.0}``) to carry
        along. Pass ``metrics`` here rather than to ``Oban`` (``True`` or oban's metrics
        options) to turn oban's metrics on for Oban Web: its cron view then lists the
        entries stored in Powertools, paused ones marked, instead of only the code ones."""
        install_hooks()
        options: dict[str, Any] = {
            "scheduler": {**(scheduler or {}), CONFIG_KEY: self},
            "stager": {**(stager or {}), CONFIG_KEY: self},
        }
        if metrics:
            options["metrics"] = {**({} if metrics is True else dict(metrics)), CONFIG_KEY: self}
        return options

    def build_scheduler(
        self,
        config: Mapping[str, Any],
        *,
        leader: LeaderLike,
        node: str,
        prefix: str,
        name: str = "Oban",
    ) -> SchedulerService:
        """Called by the ``scheduler.build`` hook with oban's scheduler config (our key
        removed) and the instance's ``name``. oban's ``timezone`` option becomes the
        default zone of imported ``@worker(cron=...)`` declarations, as it was for oban's
        scheduler."""
        if self.scheduler is not None:
            raise ConfigError(
                "oban_options",
                "this runtime is already attached to an Oban instance",
                "Call powertools.oban_options() once per Oban instance.",
            )
        self._check_prefix(prefix)
        unknown = sorted(set(config) - {"timezone"})
        if unknown:
            raise ConfigError(
                "scheduler",
                f"unknown option(s) {', '.join(unknown)} for Powertools' scheduler",
                "Only oban's 'timezone' option applies; tune the loop with "
                "Runtime(grace=..., leader_poll_interval=...).",
            )
        if "timezone" in config:
            try:
                load_timezone(config["timezone"])
            except CronTimezoneError as exc:
                raise ConfigError("scheduler.timezone", str(exc), "Use an IANA name.") from exc
            self.default_timezone = config["timezone"]
        self.scheduler = CronScheduler(
            self.database,
            leader=leader,
            node=node,
            prefix=prefix,
            clock=self._clock,
            grace=self._grace,
            poll_interval=self._leader_poll_interval,
        )
        self.rollup = JobRollup(
            self.database,
            leader=leader,
            node=node,
            clock=self._clock,
            retention=self._rollup_retention,
            poll_interval=self._leader_poll_interval,
        )
        presence = Presence(lambda: self.database, name=name, node=node)
        self.workflow_repair = WorkflowRepair(
            self.database,
            leader=leader,
            node=node,
            prefix=prefix,
            interval=self._workflow_repair_interval,
        )
        # The chains' repair runs beside the workflows', on the same interval.
        chain_repair = ChainRepair(
            self.database,
            leader=leader,
            node=node,
            prefix=prefix,
            interval=self._workflow_repair_interval,
        )
        # The accurate lifeline (oban's loop calls it on the leader, through the
        # lifeline.rescue hook); it uses the runtime's pool while the instance runs.
        self.lifeline = Lifeline(
            lambda: self.database,
            grace=lambda: self.powertools.config.lifeline_grace_seconds,
            node=node,
            running=lambda: self._users > 0,
        )
        return SchedulerService(
            self, self.scheduler, presence, (self.workflow_repair, chain_repair, self.rollup)
        )

    def build_stager(
        self,
        stager: Any,
        *,
        producers: Mapping[str, ProducerLike],
        notifier: NotifierLike,
        prefix: str,
        node: str = "",
    ) -> StagerService:
        """Called by the ``stager.build`` hook with the stager oban (or a previous hook)
        built; returns one looper running it and the queue-state applier."""
        if self.applier is not None:
            raise ConfigError(
                "oban_options",
                "this runtime is already attached to an Oban instance",
                "Call powertools.oban_options() once per Oban instance.",
            )
        self._check_prefix(prefix)
        self.applier = QueueStateApplier(
            self.database, producers, notifier=notifier, interval=self._queue_state_interval
        )
        self.limiter = Limiter(
            self.database,
            lambda: declared_limits(hooks.queue_options(producers)),
            node=node,
            interval=self._queue_state_interval,
        )
        # A limited fetch holds one of the runtime's connections for its transaction: room
        # for one per queue beside the scheduler's and the applier's.
        self._pool_max_size += len(producers)
        self.database.grow(self._pool_max_size)
        hooks.attach_fetcher(producers, self.limiter)
        return StagerService(self, stager, self.applier, self.limiter, producers)

    def build_metrics(self, metrics: Any, *, notifier: Any, name: str, node: str) -> MetricsService:
        """Called by the ``metrics.build`` hook with the metrics looper oban (or a previous
        hook) built; its crontab broadcast is replaced by one of the stored entries."""
        return MetricsService(self, metrics, notifier=notifier, name=name, node=node)

    def _check_prefix(self, prefix: str) -> None:
        if prefix != self.prefix:
            raise ConfigError(
                "prefix",
                f"the Oban instance uses prefix {prefix!r} but Powertools is configured "
                f"for {self.prefix!r}",
                "Pass the same schema to Oban(prefix=...) and Config(prefix=...).",
            )

    # -- declarations -------------------------------------------------------------------

    def code_entries(self) -> list[CronEntrySpec]:
        return code_entries(
            self.declarations,
            include_oban=self.import_oban_cron,
            default_timezone=self.default_timezone,
        )

    async def sync_declarations(self) -> SyncResult:
        """Write the code entries to the database (idempotent; every node does it)."""
        specs = self.code_entries()
        async with self.database.connection() as conn:
            result = await sync_declarations(conn, specs)
        if result.created or result.updated:
            logger.info(
                "cron declarations synced: %d created, %d updated",
                len(result.created),
                len(result.updated),
            )
        return result

    # -- the shared pool ----------------------------------------------------------------

    def _new_database(self) -> Database:
        config = self.powertools.config
        return Database(
            config.database_url,
            config.prefix,
            max_size=self._pool_max_size,
            timeout=config.pool_timeout,
        )

    async def acquire(self) -> None:
        """Open the runtime's pool for one more running component."""
        async with self._lock:
            if self._users == 0:
                if self._opened:
                    # psycopg pools cannot be reopened: an instance restarted after stop()
                    # gets a fresh pool, and its components are pointed at it.
                    self.database = self._new_database()
                    components = (
                        self.scheduler,
                        self.applier,
                        self.limiter,
                        self.workflow_repair,
                        self.rollup,
                    )
                    for component in components:
                        if component is not None:
                            component.database = self.database
                await self.database.open()
                self._opened = True
            self._users += 1

    async def release(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users == 0:
                await self.database.close()


def install_hooks() -> None:
    """Install oban's hooks for Powertools runtimes (once per process)."""
    hooks.install(resolve_runtime)


def resolve_runtime(value: Any) -> Runtime:
    """The runtime an instance's ``powertools`` config value stands for: the ``Runtime``
    ``oban_options()`` put there, or an import path from oban.toml."""
    if isinstance(value, str):
        value = runtime_at(value)
    if not isinstance(value, Runtime):
        raise ConfigError(
            CONFIG_KEY,
            f"expected an oban_powertools Runtime, got {type(value).__name__}",
            "Pass **powertools.oban_options() to Oban(...) instead of building the dict, or "
            "an import path ('package.module:attribute') in oban.toml.",
        )
    return value


# Runtimes named by import path (oban.toml), one per path: the scheduler, stager and
# metrics sections of one instance name the same path and must share one runtime.
_BY_PATH: dict[str, Runtime] = {}


def runtime_at(path: str) -> Runtime:
    """The runtime an oban.toml section names by import path: the object there, a
    ``Runtime`` or a ``Powertools`` (a runtime with default options is made for it), or a
    callable returning one of them. Resolved once per path and process."""
    from ..config import load_object

    found = _BY_PATH.get(path)
    if found is not None:
        return found
    obj = load_object(path, CONFIG_KEY)
    if callable(obj) and not isinstance(obj, Runtime | MakesRuntimes):
        obj = obj()
    if isinstance(obj, MakesRuntimes):
        obj = obj.runtime()
    if not isinstance(obj, Runtime):
        raise ConfigError(
            CONFIG_KEY,
            f"{path!r} is a {type(obj).__name__}, not a Runtime or Powertools",
            "Point it at a Powertools, a Runtime, or a function returning one.",
        )
    _BY_PATH[path] = obj
    return obj


@runtime_checkable
class MakesRuntimes(Protocol):
    """What a ``Powertools`` is to the runtime (which sits below it and does not import
    it): something that makes a runtime for itself."""

    def runtime(self) -> Runtime: ...
