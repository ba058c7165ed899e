"""Which minutes of a cron entry are due, and how catch-up decides the missed ones.

Pure: no database and no loop. The scheduler (:mod:`oban_powertools.runtime.scheduler`)
locks an entry, asks :func:`plan_slots` what to claim, and writes it. Slots are UTC
minutes (see :mod:`.firing` for how wall-clock time and DST map onto them).

Catch-up
========

Due minutes before the *live window* were missed: the scheduler was down, or the entry
was paused. The ``catch_up_policy`` decides them:

* ``none``: no job; one slot row, outcome ``skipped_catch_up``, records the latest missed
  minute with the gap in ``detail`` (so forensics can show the decision);
* ``latest``: the latest missed minute is enqueued (kind ``catch_up``);
* ``all``: the ``max_catch_up`` most recent missed minutes are enqueued (kind
  ``catch_up``); when older ones exist, one ``skipped_catch_up`` row records the newest
  dropped minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .expression import CronExpression
from .firing import due_minutes, fires_at, latest_due

__all__ = [
    "MINUTE",
    "SlotPlan",
    "ceil_minute",
    "floor_minute",
    "iso_minute",
    "iso_utc",
    "plan_slots",
]

MINUTE = timedelta(minutes=1)


def floor_minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def ceil_minute(value: datetime) -> datetime:
    floor = floor_minute(value)
    return floor if floor == value else floor + MINUTE


# The scheduler writes the same few minutes as text thousands of times per evaluation
# (slot rows, job meta, entry bookkeeping); formatting them was a tenth of its Python.
_ISO: dict[datetime, str] = {}


def iso_minute(value: datetime) -> str:
    """``value.isoformat()``, remembered for UTC values (a UTC datetime's text depends on
    its instant alone; others keep their own offset, so they are formatted each time)."""
    if value.tzinfo is not UTC:
        return value.isoformat()
    text = _ISO.get(value)
    if text is None:
        if len(_ISO) >= 4096:
            _ISO.clear()
        text = _ISO[value] = value.isoformat()
    return text


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return iso_minute(value if value.tzinfo is UTC else value.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What one entry should claim at one evaluation (see :func:`plan_slots`)."""

    slots: list[tuple[datetime, str, bool]]  # (minute, kind, late), ascending
    skipped: tuple[datetime, dict[str, Any]] | None  # a 'skipped_catch_up' row
    through: datetime


def plan_slots(
    expr: CronExpression,
    tz: ZoneInfo,
    *,
    evaluated_through: datetime | None,
    updated_at: datetime | None,
    now_minute: datetime,
    live_from: datetime,
    catch_up_policy: str,
    max_catch_up: int,
    first_due: datetime | None = None,
) -> SlotPlan | None:
    """The slots an entry claims when evaluated at ``now_minute``; None if already done.

    Pure: the decisions of the module docstring without the database, so they can be
    tested minute by minute. ``first_due``, when the caller knows it, must be
    ``next_fire(expr, tz, evaluated_through)``: nothing fires before it, so those minutes
    are not searched (the scheduler caches it; without it the result is the same).
    """
    now = now_minute
    if evaluated_through is None:
        # A new entry starts now: no backfill of minutes before it was first looked at.
        first = [(now, "scheduled", False)] if fires_at(expr, tz, now) else []
        return SlotPlan(first, None, now)
    through = floor_minute(evaluated_through)
    if through >= now:
        return None
    if first_due is not None and first_due >= now:
        # Nothing fired in (through, now): no gap to catch up and at most this minute
        # live, whatever the live window. The usual case, so it skips the searches below.
        return SlotPlan([(now, "scheduled", False)] if first_due == now else [], None, now)
    live_floor = live_from
    if updated_at is not None:
        live_floor = max(live_floor, ceil_minute(updated_at.astimezone(UTC)))
    live_floor = max(min(live_floor, now), through + MINUTE)
    span = int((now - live_floor) / MINUTE) + 1
    if first_due is None or first_due < live_floor:
        live = due_minutes(expr, tz, live_floor - MINUTE, now, limit=span)
    elif first_due <= now:
        # The first live minute is first_due; at the top of the hour it is usually now.
        live = [first_due, *due_minutes(expr, tz, first_due, now, limit=span - 1)]
    else:
        live = []
    slots: list[tuple[datetime, str, bool]] = []
    skipped: tuple[datetime, dict[str, Any]] | None = None
    gap_last = live_floor - MINUTE
    if gap_last > through and (first_due is None or first_due <= gap_last):
        gap = {"gap_from": iso_utc(through + MINUTE), "gap_to": iso_utc(gap_last)}
        if catch_up_policy == "none":
            latest = latest_due(expr, tz, through, gap_last)
            if latest is not None:
                skipped = (latest, {"policy": "none", **gap})
        elif catch_up_policy == "latest":
            latest = latest_due(expr, tz, through, gap_last)
            if latest is not None:
                slots.append((latest, "catch_up", False))
        else:
            # Walk back from the end of the gap: the most recent missed minutes matter.
            missed: list[datetime] = []
            until = gap_last
            while len(missed) < max_catch_up:
                found = latest_due(expr, tz, through, until)
                if found is None:
                    break
                missed.append(found)
                until = found - MINUTE
            if len(missed) == max_catch_up:
                older = latest_due(expr, tz, through, until)
                if older is not None:
                    skipped = (
                        older,
                        {
                            "policy": "all",
                            "max_catch_up": max_catch_up,
                            "older_dropped": True,
                            **gap,
                        },
                    )
            slots.extend((m, "catch_up", False) for m in reversed(missed))
    slots.extend((m, "scheduled", m < now) for m in live)
    return SlotPlan(slots, skipped, now)
