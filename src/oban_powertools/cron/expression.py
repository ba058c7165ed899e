"""Cron expressions and the UTC-minute slot model of the powertools scheduler.

Syntax
======

The syntax is a compatible superset of oban-py's ``oban._scheduler.Expression``
so that entries declared with ``@worker(cron=...)`` mean the same thing when the
powertools scheduler takes them over:

* five whitespace-separated fields: minute (0-59), hour (0-23), day of month
  (1-31), month (1-12) and day of week (0-7, where both 0 and 7 are Sunday);
* every field is a comma list (at most 100 items) of ``*``, ``n``, ``a-b``,
  ``*/s``, ``a-b/s`` and ``n/s`` (from ``n`` to the field maximum in steps of
  ``s``, as oban accepts it);
* month names JAN-DEC and weekday names SUN-SAT in any case (oban only accepts
  upper case);
* the nicknames ``@hourly @daily @midnight @weekly @monthly @yearly @annually``
  in any case.

A time matches when its minute AND hour AND day AND month AND weekday all
match.  This is oban-py's rule, *not* Vixie cron's, where a restricted day of
month and a restricted day of week are OR-ed: ``0 0 13 * FRI`` here means
"midnight on every Friday the 13th", not "on the 13th and on every Friday".
Keeping oban's rule is what makes a taken-over job fire on the same days.

Parsing is strict and bounded: the text is capped at 256 characters and 100
list items per field, numbers are ASCII ``[0-9]`` only, the item grammar is a
single regular expression without nested repetition, and no loop depends on
the size of a number in the input.  Every problem raises
:class:`CronExpressionError` naming the field and what is wrong.  Expressions
whose day and month can never coincide (``0 0 31 2 *``) are rejected; Feb 29 is
accepted since it occurs in leap years (and since weekdays rotate over the
years, any possible day/month pair eventually falls on every weekday, so the
weekday field can never make an expression impossible).

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

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import CronExpressionError, CronTimezoneError, InvalidArgument

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_LIST_ITEMS",
    "SEARCH_HORIZON",
    "CronExpression",
    "CronExpressionError",
    "CronTimezoneError",
    "due_minutes",
    "fires_at",
    "latest_due",
    "load_timezone",
    "next_fire",
    "previous_fire",
]

MAX_EXPRESSION_LENGTH = 256
"""Longest accepted expression text, in characters."""

MAX_LIST_ITEMS = 100
"""Most comma-separated items accepted in one field."""

MAX_TIMEZONE_LENGTH = 64
"""Longest accepted time zone name, in characters."""

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

_FIELD_NAMES = "minute hour day month weekday"

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_ALIASES = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_WEEKDAY_ALIASES = {name: number for number, name in enumerate(_WEEKDAY_NAMES)}

_MONTH_LONG = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAY_LONG = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Month lengths in a leap year: a (month, day) pair is possible iff it fits here.
_LEAP_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_NICKNAMES = {
    "@annually": "0 0 1 1 *",
    "@yearly": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@midnight": "0 0 * * *",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_WHITESPACE = " \t\r\n\f\v"
_FIELD_SPLIT = re.compile(r"[ \t\r\n\f\v]+")
# One list item.  The alternatives use disjoint character classes and nothing
# repeats a repetition, so matching is linear in the item length.
_VALUE = r"[0-9]+|[A-Za-z]+"
_ITEM = re.compile(rf"(?:(\*)|({_VALUE})(?:-({_VALUE}))?)(?:/([0-9]+))?")
_ITEM_FORMS = "*, N, A-B, */S, A-B/S or N/S"
_TIMEZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    aliases: dict[str, int] | None
    alias_hint: str

    @property
    def span(self) -> int:
        return self.high - self.low + 1


_MINUTE_FIELD = _Field("minute", 0, 59, None, "")
_HOUR_FIELD = _Field("hour", 0, 23, None, "")
_DAY_FIELD = _Field("day", 1, 31, None, "")
_MONTH_FIELD = _Field("month", 1, 12, _MONTH_ALIASES, "JAN-DEC")
# 0-7 on input (7 is Sunday, as in oban); folded to 0-6 after parsing.
_WEEKDAY_FIELD = _Field("weekday", 0, 7, _WEEKDAY_ALIASES, "SUN-SAT")
_FIELDS = (_MINUTE_FIELD, _HOUR_FIELD, _DAY_FIELD, _MONTH_FIELD, _WEEKDAY_FIELD)


def _clip(text: str, limit: int = 20) -> str:
    """``repr`` of ``text``, shortened so error messages stay readable."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def _show_number(token: str) -> str:
    """A number from the input for an error message (huge ones are clipped)."""
    if len(token) > 12:
        return _clip(token)
    return str(int(token))


def _parse_value(spec: _Field, token: str) -> int:
    if token[0].isdigit():  # the regex guarantees ASCII digits here
        number = int(token)  # at most MAX_EXPRESSION_LENGTH digits
        if not spec.low <= number <= spec.high:
            raise CronExpressionError(
                f"{spec.name} field: {_show_number(token)} is out of range {spec.low}-{spec.high}"
            )
        return number
    if spec.aliases is None:
        raise CronExpressionError(
            f"{spec.name} field: names such as {_clip(token)} are only allowed "
            "in the month and weekday fields"
        )
    value = spec.aliases.get(token.upper())
    if value is None:
        raise CronExpressionError(
            f"{spec.name} field: unknown alias {_clip(token)} (expected {spec.alias_hint})"
        )
    return value


def _parse_item(spec: _Field, item: str) -> range:
    if not item:
        raise CronExpressionError(f"{spec.name} field: empty list item")
    match = _ITEM.fullmatch(item)
    if match is None:
        raise CronExpressionError(
            f"{spec.name} field: cannot parse {_clip(item)} (expected {_ITEM_FORMS})"
        )
    star, first, last, step_text = match.groups()
    if star is not None:
        low, high = spec.low, spec.high
    else:
        low = _parse_value(spec, first)
        if last is not None:
            high = _parse_value(spec, last)
            if low > high:
                raise CronExpressionError(
                    f"{spec.name} field: range {first}-{last} is reversed"
                    + (f" ({low}-{high})" if not (first + last).isdigit() else "")
                )
        elif step_text is not None:
            high = spec.high  # "n/s": from n to the field maximum, as in oban
        else:
            high = low
    step = 1
    if step_text is not None:
        step = int(step_text) if len(step_text) <= 12 else 0
        if not 1 <= step <= spec.span:
            raise CronExpressionError(
                f"{spec.name} field: step must be between 1 and {spec.span}, "
                f"got {_show_number(step_text)}"
            )
    return range(low, high + 1, step)


def _parse_field(spec: _Field, text: str) -> frozenset[int]:
    items = text.split(",", MAX_LIST_ITEMS)
    if len(items) > MAX_LIST_ITEMS:
        raise CronExpressionError(
            f"{spec.name} field: too many list items (at most {MAX_LIST_ITEMS})"
        )
    values: set[int] = set()
    for item in items:
        values.update(_parse_item(spec, item))
    return frozenset(values)


def _compress(values: frozenset[int], low: int, high: int) -> str:
    """Canonical text of one field: ``*``, ``*/s`` or a list of values and runs."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) >= 2 and ordered[0] == low:
        step = ordered[1] - ordered[0]
        if ordered == list(range(low, high + 1, step)):
            return f"*/{step}"
    parts: list[str] = []
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        if end - start >= 2:
            parts.append(f"{ordered[start]}-{ordered[end]}")
        else:
            parts.extend(str(value) for value in ordered[start : end + 1])
        start = end + 1
    return ",".join(parts)


def _every_step(values: frozenset[int], low: int, high: int) -> int | None:
    """``s`` if ``values`` is exactly every ``s``-th value from ``low`` and ``s``
    divides the field evenly (so the rhythm never stutters), else ``None``."""
    span = high - low + 1
    if len(values) < 2 or min(values) != low:
        return None
    ordered = sorted(values)
    step = ordered[1] - ordered[0]
    if step > 1 and span % step == 0 and ordered == list(range(low, high + 1, step)):
        return step
    return None


def _join_words(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True, slots=True)
class CronExpression:
    """A parsed cron expression: the set of allowed values of each field.

    Build one with :meth:`parse`.  Constructing it directly is allowed too; the
    sets are then validated (weekdays must already be 0-6, Sunday = 0).
    """

    source: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # Search tables derived in __post_init__, excluded from eq/hash/repr.
    _minute_list: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hour_list: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _pairs: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = (
            ("minutes", self.minutes, 0, 59),
            ("hours", self.hours, 0, 23),
            ("days", self.days, 1, 31),
            ("months", self.months, 1, 12),
            ("weekdays", self.weekdays, 0, 6),
        )
        for name, values, low, high in checks:
            frozen = frozenset(values)
            if not frozen:
                raise CronExpressionError(f"{name}: no values")
            if not all(isinstance(v, int) and low <= v <= high for v in frozen):
                raise CronExpressionError(f"{name}: values must be integers in {low}-{high}")
            object.__setattr__(self, name, frozen)
        pairs = tuple(
            (month, day)
            for month in sorted(self.months)
            for day in sorted(self.days)
            if day <= _LEAP_MONTH_DAYS[month]
        )
        if not pairs:
            months = ",".join(_MONTH_NAMES[m - 1] for m in sorted(self.months))
            raise CronExpressionError(
                f"never matches: day {_compress(self.days, 1, 31)} never occurs in {months}"
            )
        object.__setattr__(self, "_minute_list", tuple(sorted(self.minutes)))
        object.__setattr__(self, "_hour_list", tuple(sorted(self.hours)))
        object.__setattr__(self, "_pairs", pairs)

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse ``text``; raise :class:`CronExpressionError` on any problem.

        ``source`` keeps the text exactly as given (leading and trailing
        whitespace is ignored for parsing only).
        """
        if not isinstance(text, str):
            raise CronExpressionError(
                f"cron expression must be a string, got {type(text).__name__}"
            )
        if len(text) > MAX_EXPRESSION_LENGTH:
            raise CronExpressionError(
                f"cron expression is too long ({len(text)} characters, "
                f"at most {MAX_EXPRESSION_LENGTH})"
            )
        stripped = text.strip(_WHITESPACE)
        if not stripped:
            raise CronExpressionError("cron expression is empty")
        body = stripped
        if stripped.startswith("@"):
            expanded = _NICKNAMES.get(stripped.lower())
            if expanded is None:
                raise CronExpressionError(
                    f"unknown nickname {_clip(stripped)} "
                    f"(expected one of {', '.join(sorted(_NICKNAMES))})"
                )
            body = expanded
        fields = _FIELD_SPLIT.split(body)
        if len(fields) != len(_FIELDS):
            raise CronExpressionError(f"expected 5 fields ({_FIELD_NAMES}), got {len(fields)}")
        minutes, hours, days, months, weekdays = (
            _parse_field(spec, part) for spec, part in zip(_FIELDS, fields, strict=True)
        )
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        return cls(
            source=text,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
        )

    def matches(self, local: datetime) -> bool:
        """Whether the wall-clock fields of ``local`` match (AND of all fields).

        Only the minute, hour, day, month and weekday of ``local`` are read;
        its tzinfo (if any), seconds and fold are ignored.  The DST handling
        lives in :func:`fires_at`, not here.
        """
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.day in self.days
            and local.month in self.months
            and local.isoweekday() % 7 in self.weekdays
        )

    def canonical(self) -> str:
        """The five fields in a normalised form, e.g. ``"0 */2 * * 1-5"``.

        Parsing the result gives the same sets again.
        """
        return " ".join(
            (
                _compress(self.minutes, 0, 59),
                _compress(self.hours, 0, 23),
                _compress(self.days, 1, 31),
                _compress(self.months, 1, 12),
                _compress(self.weekdays, 0, 6),
            )
        )

    def describe(self) -> str:
        """A short English description, e.g. ``"at 02:00 every day"``.

        Common shapes get a phrase; anything else falls back to
        :meth:`canonical`.
        """
        time_phrase = self._describe_time()
        day_phrase = self._describe_days()
        if time_phrase is None or day_phrase is None:
            return self.canonical()
        if day_phrase == "every day" and time_phrase.startswith("every"):
            return time_phrase
        return f"{time_phrase} {day_phrase}"

    def _describe_time(self) -> str | None:
        all_minutes = len(self.minutes) == 60
        all_hours = len(self.hours) == 24
        if all_minutes and all_hours:
            return "every minute"
        minute_step = _every_step(self.minutes, 0, 59)
        if minute_step is not None and all_hours:
            return f"every {minute_step} minutes"
        if len(self.minutes) == 1:
            (minute,) = self.minutes
            at = "" if minute == 0 else f" at :{minute:02d}"
            if all_hours:
                return f"every hour{at}"
            hour_step = _every_step(self.hours, 0, 23)
            if hour_step is not None:
                return f"every {hour_step} hours{at}"
        if len(self.minutes) * len(self.hours) <= 4:
            times = [f"{h:02d}:{m:02d}" for h in self._hour_list for m in self._minute_list]
            return "at " + _join_words(times)
        return None

    def _describe_days(self) -> str | None:
        all_days = len(self.days) == 31
        all_months = len(self.months) == 12
        all_weekdays = len(self.weekdays) == 7
        if all_days and all_months:
            if all_weekdays:
                return "every day"
            if self.weekdays == frozenset({1, 2, 3, 4, 5}):
                return "on weekdays"
            if self.weekdays == frozenset({0, 6}):
                return "on weekends"
            return "on " + _join_words([_WEEKDAY_LONG[d] for d in sorted(self.weekdays)])
        if all_weekdays and len(self.days) == 1:
            (day,) = self.days
            if all_months:
                return f"on day {day} of every month"
            if len(self.months) == 1:
                (month,) = self.months
                return f"on {_MONTH_LONG[month - 1]} {day}"
        return None

    # -- wall-clock search -------------------------------------------------
    #
    # These work on naive wall-clock minutes.  Cost: bisection within a day,
    # then one cheap check per possible (month, day) pair per year, and every
    # valid expression has a matching date within 40 years.

    def _date_ok(self, day: date) -> bool:
        return (
            day.day in self.days
            and day.month in self.months
            and day.isoweekday() % 7 in self.weekdays
        )

    def _next_date(self, after: date, stop: date) -> date | None:
        """First matching date strictly after ``after`` and not after ``stop``."""
        year = after.year
        start = bisect_right(self._pairs, (after.month, after.day))
        while year <= stop.year:
            for month, day in self._pairs[start:]:
                if month == 2 and day == 29 and not _is_leap(year):
                    continue
                candidate = date(year, month, day)
                if candidate > stop:
                    return None
                if candidate.isoweekday() % 7 in self.weekdays:
                    return candidate
            year += 1
            start = 0
        return None

    def _previous_date(self, before: date, stop: date) -> date | None:
        """Last matching date strictly before ``before`` and not before ``stop``."""
        year = before.year
        end = bisect_left(self._pairs, (before.month, before.day))
        while year >= stop.year:
            for month, day in reversed(self._pairs[:end]):
                if month == 2 and day == 29 and not _is_leap(year):
                    continue
                candidate = date(year, month, day)
                if candidate < stop:
                    return None
                if candidate.isoweekday() % 7 in self.weekdays:
                    return candidate
            year -= 1
            end = len(self._pairs)
        return None

    def _next_wall(self, start: datetime, stop: date) -> datetime | None:
        """First matching naive wall minute at or after ``start`` (minute-aligned),
        on or before the date ``stop``."""
        day = start.date()
        if day > stop:
            return None
        if self._date_ok(day):
            hours, minutes = self._hour_list, self._minute_list
            i = bisect_left(hours, start.hour)
            if i < len(hours) and hours[i] == start.hour:
                j = bisect_left(minutes, start.minute)
                if j < len(minutes):
                    return start.replace(minute=minutes[j])
                i += 1
            if i < len(hours):
                return start.replace(hour=hours[i], minute=minutes[0])
        found = self._next_date(day, stop)
        if found is None:
            return None
        return datetime(
            found.year, found.month, found.day, self._hour_list[0], self._minute_list[0]
        )

    def _previous_wall(self, start: datetime, stop: date) -> datetime | None:
        """Last matching naive wall minute at or before ``start`` (minute-aligned),
        on or after the date ``stop``."""
        day = start.date()
        if day < stop:
            return None
        if self._date_ok(day):
            hours, minutes = self._hour_list, self._minute_list
            i = bisect_right(hours, start.hour) - 1
            if i >= 0 and hours[i] == start.hour:
                j = bisect_right(minutes, start.minute) - 1
                if j >= 0:
                    return start.replace(minute=minutes[j])
                i -= 1
            if i >= 0:
                return start.replace(hour=hours[i], minute=minutes[-1])
        found = self._previous_date(day, stop)
        if found is None:
            return None
        return datetime(
            found.year, found.month, found.day, self._hour_list[-1], self._minute_list[-1]
        )


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# -- time zones ---------------------------------------------------------------


def load_timezone(name: str) -> ZoneInfo:
    """Load an IANA time zone, raising :class:`CronTimezoneError` if it is unknown.

    Names are checked before they reach :class:`ZoneInfo` (which maps them to
    files): only ``Area/Location``-style keys of ASCII letters, digits, ``_``,
    ``+`` and ``-`` of at most 64 characters are accepted, so path-like input
    such as ``../etc/passwd`` never touches the file system.
    """
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_TIMEZONE_LENGTH
        or _TIMEZONE_NAME.fullmatch(name) is None
    ):
        shown = _clip(name, MAX_TIMEZONE_LENGTH) if isinstance(name, str) else repr(name)
        raise CronTimezoneError(f"unknown time zone {shown}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CronTimezoneError(f"unknown time zone {name!r}") from exc


# -- the slot model -----------------------------------------------------------


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
        skipped = expr._next_wall(previous + _MINUTE, wall.date())
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


def _search_forward(
    expr: CronExpression, tz: ZoneInfo, first: datetime, last: datetime
) -> datetime | None:
    """Earliest firing UTC minute ``m`` with ``first <= m <= last``."""
    first = max(first, _MIN_UTC)
    last = min(last, _MAX_UTC)
    if first > last:
        return None
    # A wall time at or before the wall clock of first - 1 was owned earlier.
    wall: datetime | None = _wall(first - _MINUTE, tz) + _MINUTE
    stop = min(_wall(last, tz).date() + 2 * _DAY, _MAX_DATE)
    while wall is not None:
        wall = expr._next_wall(wall, stop)
        if wall is None:
            return None
        owner = _owner(wall, tz)
        if owner > last:
            return None  # owners only grow with the wall time
        if owner >= first and _fires(expr, tz, owner):
            return owner
        # Owned before `first` (the repeated hour of a fall-back): keep going.
        wall += _MINUTE
    return None


def _search_backward(
    expr: CronExpression, tz: ZoneInfo, last: datetime, first: datetime
) -> datetime | None:
    """Latest firing UTC minute ``m`` with ``first <= m <= last``."""
    first = max(first, _MIN_UTC)
    last = min(last, _MAX_UTC)
    if first > last:
        return None
    local = last.astimezone(tz)
    start = local.replace(tzinfo=None, second=0, microsecond=0, fold=0)
    if local.fold == 1:
        # In the second pass of a repeated hour the first pass already reached
        # later wall times; start from an upper bound on them (owners past
        # `last` are skipped below).
        start = _floor_minute(start + (last - local.replace(fold=0).astimezone(UTC)))
    wall: datetime | None = start
    stop = max(_wall(first, tz).date() - 2 * _DAY, _MIN_DATE)
    while wall is not None:
        wall = expr._previous_wall(wall, stop)
        if wall is None:
            return None
        owner = _owner(wall, tz)
        if owner < first:
            return None
        if owner <= last and _fires(expr, tz, owner):
            return owner
        wall -= _MINUTE
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
    return _search_forward(expr, tz, start, _offset(start, SEARCH_HORIZON))


def previous_fire(expr: CronExpression, tz: ZoneInfo, before_utc: datetime) -> datetime | None:
    """The latest firing UTC minute strictly before ``before_utc``.

    ``None`` if there is none within :data:`SEARCH_HORIZON`.
    """
    end = _offset(_ceil_minute(_as_utc(before_utc, "before_utc")), -_MINUTE)
    return _search_backward(expr, tz, end, _offset(end, -SEARCH_HORIZON))


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
        minute = _search_forward(expr, tz, current, last)
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
    return _search_backward(expr, tz, last, first)
