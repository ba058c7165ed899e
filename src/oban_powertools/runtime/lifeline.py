"""The accurate lifeline: rescue the jobs of producers that stopped heartbeating, only those.

oban's own lifeline (``rescue_jobs.sql``) makes *any* job executing longer than
``rescue_after`` (300 s) available again, even one still running on a live node: a long
job then runs twice, and the first run's ack is dropped. Powertools replaces it, through
the ``lifeline.rescue`` hook (:mod:`.hooks`), for every instance with a runtime. oban
still runs the loop (leader only, every lifeline ``interval``); each pass here

* finds the *orphaned* executing jobs: their producer (``attempted_by[2]``, a row of
  ``oban_producers`` that oban's refresher touches every 15 s) has not heartbeated within
  ``Config.lifeline_grace_seconds`` (60 s by default), or its row is gone;
* in one statement (``lifeline.sql: rescue_orphans``) makes each available again with its
  attempt kept, or discards it when it has no attempt left, appending an error entry that
  names the node, the producer and its last heartbeat. The candidates are locked with
  SKIP LOCKED and the update re-checks state and ``attempted_at``, so each job is rescued
  exactly once even while two nodes both believe they lead;
* writes one audit event (``lifeline.rescued``, by the system principal) listing the jobs
  it rescued and discarded and the producers they were orphaned by, in the same
  transaction: no change without its record;
* emits the telemetry event ``oban_powertools.lifeline.rescue``, and oban's own
  ``oban.lifeline.rescue`` span with ``rescued_count`` as oban's pass would.

A job executing on a live producer is never touched, however long it runs: one that runs
longer than ``stuck_after_seconds`` is *stuck*, which the pages report and an operator may
discard (``actions/lifeline.py``). ``rescue_after`` is ignored.

Like oban's pass, this one also discards available jobs with no attempt left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from oban import telemetry as oban_telemetry  # oban's own lifeline span, as its pass has

from .. import telemetry
from ..audit import write_event
from ..db import Database
from ..db.queries import Statements
from ..seams import SYSTEM_PRINCIPAL
from .failures import log_error

__all__ = [
    "TELEMETRY_EVENT",
    "Lifeline",
    "RescuePass",
    "attach_lifeline",
    "lifeline_for",
    "wrap_rescue",
]

logger = logging.getLogger(__name__)

RESCUED = telemetry.declare(
    "oban_powertools.lifeline.rescue",
    measurements=("rescued_count", "discarded_count", "orphaned_producers_count", "duration"),
    metadata=("orphaned_producers", "audit_event_id"),
)
TELEMETRY_EVENT = RESCUED.name
# A pass rescues at most this many jobs; a larger crash is finished by the next passes
# (one a lifeline interval), and an audit event stays a reasonable size.
PASS_LIMIT = 10_000

Q = Statements(lifeline="rescue_orphans discard_exhausted")


@dataclass(frozen=True, slots=True)
class OrphanedProducer:
    """A producer whose jobs a pass rescued: where it ran and when it last heartbeated."""

    node: str
    producer: str
    last_heartbeat: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "producer": self.producer,
            "last_heartbeat_at": _iso(self.last_heartbeat),
        }


@dataclass(slots=True)
class RescuePass:
    """What one lifeline pass did."""

    rescued: list[int] = field(default_factory=list)
    discarded: list[int] = field(default_factory=list)
    exhausted: list[int] = field(default_factory=list)  # available, no attempt left
    producers: list[OrphanedProducer] = field(default_factory=list)
    audit_event_id: int | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.rescued or self.discarded or self.exhausted)

    def emit(self) -> None:
        """Report this pass as the ``lifeline.rescue`` event (oban's handlers receive one
        dict: measurements and metadata together)."""
        telemetry.emit(
            RESCUED,
            {
                "rescued_count": len(self.rescued),
                "discarded_count": len(self.discarded) + len(self.exhausted),
                "orphaned_producers_count": len(self.producers),
                "duration": round(self.seconds * 1e9),
            },
            {
                "orphaned_producers": [p.as_dict() for p in self.producers],
                "audit_event_id": self.audit_event_id,
            },
        )


class Lifeline:
    """The accurate rescue of one Oban instance's runtime; :meth:`rescue` is one pass.

    ``database`` is called for the runtime's pool at each pass (a runtime restarted after
    a stop has a new one); ``grace`` gives the grace in seconds (the host's Config);
    ``node`` names the leader in the audit event.
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        grace: Callable[[], float],
        node: str,
        running: Callable[[], bool] = lambda: True,
        limit: int = PASS_LIMIT,
    ) -> None:
        self._database = database
        self._grace = grace
        self._running = running
        self.node = node
        self.limit = limit
        self.last_pass: RescuePass | None = None

    async def rescue(self) -> RescuePass:
        """One pass: rescue (or discard) every orphaned job, audit it, report it."""
        started = time.perf_counter()
        result = RescuePass()
        if not self._running():
            # The instance is stopping and the runtime's pool is closed: the next leader's
            # pass does the work.
            return result
        grace = float(self._grace())
        async with self._database().transaction() as conn:
            cur = await conn.execute(Q.rescue_orphans, {"grace": grace, "limit": self.limit})
            rows = await cur.fetchall()
            cur = await conn.execute(Q.discard_exhausted)
            exhausted = await cur.fetchall()
            producers: dict[tuple[str, str], OrphanedProducer] = {}
            for row in rows:
                (result.discarded if row["state"] == "discarded" else result.rescued).append(
                    int(row["id"])
                )
                key = (row["node"] or "unknown", row["producer"] or "unknown")
                if key not in producers:
                    producers[key] = OrphanedProducer(*key, _utc(row["last_heartbeat"]))
            result.exhausted = [int(r["id"]) for r in exhausted]
            result.producers = sorted(producers.values(), key=lambda p: (p.node, p.producer))
            if result.changed:
                result.audit_event_id = await write_event(
                    conn,
                    action="lifeline.rescued",
                    command="lifeline_rescue",
                    resource_type="lifeline",
                    resource_id=self.node,
                    principal=SYSTEM_PRINCIPAL,
                    surface="system",
                    outcome="succeeded",
                    reason="producers stopped heartbeating",
                    detail={
                        "rescued": sorted(result.rescued),
                        "discarded": sorted(result.discarded),
                        "exhausted_discarded": sorted(result.exhausted),
                        "orphaned_producers": [p.as_dict() for p in result.producers],
                        "grace_seconds": grace,
                        "leader_node": self.node,
                        "targets": sorted(result.rescued + result.discarded + result.exhausted),
                    },
                )
        result.seconds = time.perf_counter() - started
        self.last_pass = result
        result.emit()
        if result.changed:
            logger.warning(
                "lifeline on %s: %d rescued, %d discarded, from %d orphaned producer(s): %s",
                self.node,
                len(result.rescued),
                len(result.discarded) + len(result.exhausted),
                len(result.producers),
                ", ".join(f"{p.node}/{p.producer}" for p in result.producers) or "-",
            )
        return result


# The lifeline of each instance with a runtime, by the instance's Query (the object oban
# hands every build hook and, later, the lifeline.rescue hook), kept with the Query so
# that its id is not reused while the entry exists (one entry per instance built).
_LIFELINES: dict[int, tuple[Any, Lifeline]] = {}


def attach_lifeline(query: Any, lifeline: Lifeline) -> None:
    _LIFELINES[id(query)] = (query, lifeline)


def lifeline_for(query: Any) -> Lifeline | None:
    found = _LIFELINES.get(id(query))
    return found[1] if found is not None and found[0] is query else None


type Rescue = Callable[[Any, float], Awaitable[Any]]


def wrap_rescue(previous: Rescue) -> Rescue:
    """``lifeline.rescue`` for instances with a runtime: the accurate pass instead of
    oban's age-based one (``rescue_after`` is not used). Other instances get ``previous``."""

    async def rescue(query: Any, rescue_after: float) -> Any:
        lifeline = lifeline_for(query)
        if lifeline is None:
            return await previous(query, rescue_after)
        with oban_telemetry.span("oban.lifeline.rescue", {}) as context:
            try:
                result = await lifeline.rescue()
            except Exception as exc:
                # Logged here without the database's DETAIL (it may quote job args), not
                # by oban's loop with a traceback; the next interval tries again.
                log_error("lifeline on %s failed; retrying", lifeline.node, error=exc)
                context.add({"rescued_count": 0})
                return None
            context.add({"rescued_count": len(result.rescued)})
        return None

    return rescue


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
