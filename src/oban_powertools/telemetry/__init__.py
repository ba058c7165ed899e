"""The library's telemetry events: declared once per module, emitted through oban's telemetry.

Powertools reports what it does through ``oban.telemetry`` (the same bus as oban's own
``oban.job.*`` events), so one ``oban.telemetry.attach`` sees both. Each module that
emits declares its events next to the code that emits them::

    CLAIMED = telemetry.declare(
        "oban_powertools.cron.slot_claimed",
        measurements=("lag_seconds",),
        metadata=("entry", "slot_at", "kind", "outcome", "job_id", "node"),
    )
    ...
    telemetry.emit(CLAIMED, {"lag_seconds": 1.5}, {"entry": "nightly", ...})

Names are ``oban_powertools.<area>.<event>``. *Measurements* are numbers (counts,
durations) and *metadata* describes what was measured (names, ids, outcomes); oban's
telemetry hands a handler one flat dict, so both are merged into it, exactly as oban's
job events carry ``duration`` beside ``job``. The split is kept in the declaration (and
the docs page), and :func:`emit` refuses a payload that does not match it, so the
documented fields (``docs/telemetry.md``, checked by ``tests/docs/test_telemetry_docs.py``)
are the fields a handler gets.

This module imports nothing from the rest of the library but its errors, so any layer
may emit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oban import telemetry as _oban_telemetry

from ..errors import InvalidArgument

__all__ = ["PREFIX", "TRACE_CONTEXT_META", "Event", "declare", "declared", "emit"]

PREFIX = "oban_powertools."
# The job meta key the OpenTelemetry integration carries the enqueuer's W3C trace context
# in (``traceparent``, ``tracestate``). It describes the delivery, not the job: unique
# keys leave it out.
TRACE_CONTEXT_META = "trace_context"


@dataclass(frozen=True, slots=True)
class Event:
    """One telemetry event: its name and the keys a handler's dict holds."""

    name: str
    measurements: tuple[str, ...]
    metadata: tuple[str, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.measurements) | frozenset(self.metadata)


_DECLARED: dict[str, Event] = {}


def declare(name: str, *, measurements: tuple[str, ...], metadata: tuple[str, ...]) -> Event:
    """Declare an event (at import time, as a module constant)."""
    if not name.startswith(PREFIX) or name.count(".") != 2:
        raise InvalidArgument(f"telemetry event {name!r} is not 'oban_powertools.<area>.<event>'")
    overlap = set(measurements) & set(metadata)
    if overlap:
        raise InvalidArgument(f"telemetry event {name!r}: {sorted(overlap)} in both parts")
    event = Event(name, tuple(measurements), tuple(metadata))
    known = _DECLARED.get(name)
    if known is not None and known != event:
        raise InvalidArgument(f"telemetry event {name!r} is declared twice, differently")
    _DECLARED[name] = event
    return event


def declared() -> dict[str, Event]:
    """Every event declared by the modules imported so far."""
    return dict(_DECLARED)


def emit(event: Event, measurements: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Send ``event`` to oban's telemetry handlers (synchronously, inline; a failing
    handler is logged and swallowed by oban)."""
    if measurements.keys() != set(event.measurements) or metadata.keys() != set(event.metadata):
        # A programming error in this library, caught by the tests that fire each event.
        raise InvalidArgument(
            f"telemetry event {event.name}: emitted "
            f"{sorted(measurements)} / {sorted(metadata)}, declared "
            f"{sorted(event.measurements)} / {sorted(event.metadata)}"
        )
    _oban_telemetry.execute(event.name, {**metadata, **measurements})
