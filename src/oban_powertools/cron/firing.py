"""When a cron expression fires: the UTC-minute slot model of the powertools scheduler.

The slot model
==============

The scheduler on the oban leader looks at every UTC minute ``m`` exactly once
and inserts at most one job per (entry, UTC minute) slot, asking
:func:`fires_at`.  Entries are written in wall-clock time of a zone, and the
wall clock is not a clean function of UTC: on a fall-back day an hour of wall
times happens twice, and on a spring-forward day an hour never happens.  The
rules below make every matching wall-clock minute fire exactly once:

1. ``L = m.astimezone(tz)`` is the wall clock at ``m`` and
   ``P = (m - 1 minute).astimezone(tz)`` the one a minute earlier.
2. Fall back: if ``L.fold == 1`` (the second occurrence of an ambiguous wall
   time) ``m`` does not fire; that wall time already fired at its first
   occurrence.
3. Spring forward: if the wall clock jumped by more than a minute from ``P`` to
   ``L``, ``m`` fires if the expression matches ``L`` or any skipped wall-clock
   minute strictly between ``P`` and ``L``.  Skipped times thus fire once, at
   the first real minute after the gap (``30 2 * * *`` in America/New_York
   fires at 03:00 EDT on 2025-03-09).
4. Otherwise ``m`` fires when the expression matches ``L``.

Equivalently: every wall-clock minute ``w`` is *owned* by the first UTC minute
whose wall clock reaches ``w`` (its first occurrence, or the first minute after
the gap that swallowed it), and a UTC minute fires when it owns a matching wall
time.  The search functions (:func:`next_fire`, :func:`previous_fire`,
:func:`due_minutes`, :func:`latest_due`) use that view: they walk matching wall
times day by day, then hour by hour, then minute by minute, skipping whatever
cannot match, map each candidate to its owner, and confirm it with
:func:`fires_at`.  They never step through long spans minute by minute.

All functions that take or return instants use timezone-aware UTC datetimes
truncated to the minute; naive datetimes are rejected with ``ValueError``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from ..errors import InvalidArgument

if TYPE_CHECKING:  # only named in annotations: expression.py re-exports from here
    from .expression import CronExpression

SEARCH_HORIZON = timedelta(days=366 * 41)
"""How far :func:`next_fire` / :func:`previous_fire` look.

Feb 29 falls on a given weekday at most 40 years apart (28 within a century,
40 across a non-leap century year such as 2100), and that is the longest gap
between two fire times of any valid expression, so within this horizon every
valid expression is found; ``None`` only comes back near the ends of the
``datetime`` range or when a caller-supplied bound is closer.
"""

_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# Keep every conversion (including +-1 day of zone offset and margins) inside
# the range datetime can represent.
_MIN_UTC = datetime(1, 1, 4, tzinfo=UTC)
_MAX_UTC = datetime(9999, 12, 28, tzinfo=UTC)
_MIN_DATE = date(1, 1, 2)
_MAX_DATE = date(9999, 12, 30)


def _as_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be a timezone-aware UTC datetime, got naive {value!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidArgument(f"{name} is out of the supported range: {value!r}") from exc


def _offset(value: datetime, delta: timedelta) -> datetime:
    """``value + delta``, saturating just outside the supported range (the
    searches treat anything outside it as "no fire")."""
    low, high = _MIN_UTC - _MINUTE, _MAX_UTC + _MINUTE
    try:
        shifted = value + delta
    except OverflowError:
        return high if delta > timedelta(0) else low
    return min(max(shifted, low), high)


def _floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _ceil_minute(value: datetime) -> datetime:
    floor = _floor_minute(value)
    return floor if floor == value else _offset(floor, _MINUTE)


def _wall(minute_utc: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall-clock minute (seconds dropped) at ``minute_utc`` in ``tz``."""
    return minute_utc.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0, fold=0)


def _fires(expr: CronExpression, tz: ZoneInfo, minute_utc: datetime) -> bool:
    """:func:`fires_at` without argument checks (``minute_utc`` is UTC, aligned)."""
    local = minute_utc.astimezone(tz)
    if local.fold == 1:
        return False  # rule 2: second pass of a repeated wall time
    wall = local.replace(tzinfo=None, second=0, microsecond=0)
    if expr.matches(wall):
        return True
    previous = _wall(minute_utc - _MINUTE, tz)
    if wall - previous > _MINUTE:
        # Rule 3: the wall clock skipped (previous, wall); this minute owns them.
        skipped = expr.next_wall(previous + _MINUTE, wall.date())
        return skipped is not None and skipped < wall
    return False


def _owner(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC minute that owns the naive wall minute ``wall``.

    That is the first UTC minute whose wall clock reaches ``wall``: its first
    occurrence when the wall time exists (``fold=0``), or the first minute after
    the gap when a spring-forward skipped it.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second and not first.second and not first.microsecond:
        # Almost every wall time: it exists exactly once (no gap, no repeat), so every
        # earlier UTC minute shows an earlier wall time and this instant owns it. The
        # search below is for the minutes around a transition (and offsets in seconds).
        return first
    return _owner_by_search(wall, tz, first, second)


def _owner_by_search(wall: datetime, tz: ZoneInfo, first: datetime, second: datetime) -> datetime:
    """:func:`_owner` by bisection, for any wall time (``first``/``second``: ``wall`` in
    UTC with ``fold`` 0 and 1)."""
    # For a skipped time, fold=0 resolves with the pre-gap offset (after the
    # transition in UTC) and fold=1 with the post-gap offset (before it).
    high = _ceil_minute(first)
    low = _floor_minute(min(first, second)) - _MINUTE
    # Invariant: _wall(low) < wall <= _wall(high); bisect on minutes.
    while high - low > _MINUTE:
        middle = low + ((high - low) // _MINUTE // 2) * _MINUTE
        if _wall(middle, tz) >= wall:
            high = middle
        else:
            low = middle
    return high


def _search(
    expr: CronExpression, tz: ZoneInfo, first: datetime, last: datetime, *, backward: bool
) -> datetime | None:
    """Earliest (``backward``: latest) firing UTC minute ``m`` with ``first <= m <= last``."""
    first = max(first, _MIN_UTC)
    last = min(last, _MAX_UTC)
    if first > last:
        return None
    wall: datetime | None
    if backward:
        local = last.astimezone(tz)
        wall = local.replace(tzinfo=None, second=0, microsecond=0, fold=0)
        if local.fold == 1:
            # In the second pass of a repeated hour the first pass already reached
            # later wall times; start from an upper bound on them (owners past
            # `last` are skipped below).
            wall = _floor_minute(wall + (last - local.replace(fold=0).astimezone(UTC)))
        stop = max(_wall(first, tz).date() - 2 * _DAY, _MIN_DATE)
        step, find = -_MINUTE, expr.previous_wall
    else:
        # A wall time at or before the wall clock of first - 1 was owned earlier.
        wall = _wall(first - _MINUTE, tz) + _MINUTE
        stop = min(_wall(last, tz).date() + 2 * _DAY, _MAX_DATE)
        step, find = _MINUTE, expr.next_wall
    while wall is not None:
        wall = find(wall, stop)
        if wall is None:
            return None
        owner = _owner(wall, tz)
        if (owner < first) if backward else (owner > last):
            return None  # owners move with the wall time, and this one is past the far end
        if first <= owner <= last and _fires(expr, tz, owner):
            return owner
        # Owned outside the range on the near side (the repeated hour of a fall-back):
        # keep going.
        wall += step
    return None


def fires_at(expr: CronExpression, tz: ZoneInfo, minute_utc: datetime) -> bool:
    """Whether the slot (``expr``, ``minute_utc``) fires; see the module docstring.

    ``minute_utc`` must be timezone-aware and on a whole minute.  The rules make
    each matching wall-clock minute in ``tz`` fire exactly once: not again in
    the repeated hour of a fall-back, and at the first minute after the gap
    when a spring-forward skips it.
    """
    minute = _as_utc(minute_utc, "minute_utc")
    if minute.second or minute.microsecond:
        raise InvalidArgument(f"minute_utc must be truncated to the minute, got {minute_utc!r}")
    if not _MIN_UTC <= minute <= _MAX_UTC:
        raise InvalidArgument(f"minute_utc is out of the supported range: {minute_utc!r}")
    return _fires(expr, tz, minute)


def next_fire(expr: CronExpression, tz: ZoneInfo, after_utc: datetime) -> datetime | None:
    """The first firing UTC minute strictly after ``after_utc``.

    ``None`` if there is none within :data:`SEARCH_HORIZON`.
    """
    start = _offset(_floor_minute(_as_utc(after_utc, "after_utc")), _MINUTE)
    return _search(expr, tz, start, _offset(start, SEARCH_HORIZON), backward=False)


def previous_fire(expr: CronExpression, tz: ZoneInfo, before_utc: datetime) -> datetime | None:
    """The latest firing UTC minute strictly before ``before_utc``.

    ``None`` if there is none within :data:`SEARCH_HORIZON`.
    """
    end = _offset(_ceil_minute(_as_utc(before_utc, "before_utc")), -_MINUTE)
    return _search(expr, tz, _offset(end, -SEARCH_HORIZON), end, backward=True)


def due_minutes(
    expr: CronExpression,
    tz: ZoneInfo,
    after_utc: datetime,
    until_utc: datetime,
    *,
    limit: int,
) -> list[datetime]:
    """Every firing UTC minute ``m`` with ``after_utc < m <= until_utc``, ascending,
    at most ``limit`` of them (the earliest ones)."""
    if limit < 0:
        raise InvalidArgument(f"limit must not be negative, got {limit}")
    current = _offset(_floor_minute(_as_utc(after_utc, "after_utc")), _MINUTE)
    last = _floor_minute(_as_utc(until_utc, "until_utc"))
    found: list[datetime] = []
    while len(found) < limit:
        minute = _search(expr, tz, current, last, backward=False)
        if minute is None:
            break
        found.append(minute)
        current = _offset(minute, _MINUTE)
    return found


def latest_due(
    expr: CronExpression, tz: ZoneInfo, after_utc: datetime, until_utc: datetime
) -> datetime | None:
    """The latest firing UTC minute ``m`` with ``after_utc < m <= until_utc``.

    What catch-up needs ("the most recent missed slot") without listing them all.
    """
    first = _offset(_floor_minute(_as_utc(after_utc, "after_utc")), _MINUTE)
    last = _floor_minute(_as_utc(until_utc, "until_utc"))
    return _search(expr, tz, first, last, backward=True)
