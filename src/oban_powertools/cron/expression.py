"""Cron expressions: parsing, validation, matching and description.

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

When an expression fires in UTC minutes, across DST, is :mod:`oban_powertools.cron.firing`;
time zones are loaded by :mod:`oban_powertools.cron.timezones`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime

from ..errors import CronExpressionError, CronTimezoneError
from .fields import (
    FIELD_NAMES,
    FIELD_SPLIT,
    FIELDS,
    LEAP_MONTH_DAYS,
    MONTH_LONG,
    MONTH_NAMES,
    NICKNAMES,
    WEEKDAY_LONG,
    WHITESPACE,
    clip,
    compress,
    every_step,
    parse_field,
)

# Callers in runtime/ and read_models/cron.py still import these from here; they live in
# firing.py, timezones.py and errors.py. Drop these names once those imports move.
from .firing import next_fire
from .timezones import load_timezone

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "CronExpression",
    "CronExpressionError",
    "CronTimezoneError",
    "load_timezone",
    "next_fire",
]

MAX_EXPRESSION_LENGTH = 256
"""Longest accepted expression text, in characters."""


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
            if day <= LEAP_MONTH_DAYS[month]
        )
        if not pairs:
            months = ",".join(MONTH_NAMES[m - 1] for m in sorted(self.months))
            raise CronExpressionError(
                f"never matches: day {compress(self.days, 1, 31)} never occurs in {months}"
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
        stripped = text.strip(WHITESPACE)
        if not stripped:
            raise CronExpressionError("cron expression is empty")
        body = stripped
        if stripped.startswith("@"):
            expanded = NICKNAMES.get(stripped.lower())
            if expanded is None:
                raise CronExpressionError(
                    f"unknown nickname {clip(stripped)} "
                    f"(expected one of {', '.join(sorted(NICKNAMES))})"
                )
            body = expanded
        fields = FIELD_SPLIT.split(body)
        if len(fields) != len(FIELDS):
            raise CronExpressionError(f"expected 5 fields ({FIELD_NAMES}), got {len(fields)}")
        minutes, hours, days, months, weekdays = (
            parse_field(spec, part) for spec, part in zip(FIELDS, fields, strict=True)
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
                compress(self.minutes, 0, 59),
                compress(self.hours, 0, 23),
                compress(self.days, 1, 31),
                compress(self.months, 1, 12),
                compress(self.weekdays, 0, 6),
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
        minute_step = every_step(self.minutes, 0, 59)
        if minute_step is not None and all_hours:
            return f"every {minute_step} minutes"
        if len(self.minutes) == 1:
            (minute,) = self.minutes
            at = "" if minute == 0 else f" at :{minute:02d}"
            if all_hours:
                return f"every hour{at}"
            hour_step = every_step(self.hours, 0, 23)
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
            return "on " + _join_words([WEEKDAY_LONG[d] for d in sorted(self.weekdays)])
        if all_weekdays and len(self.days) == 1:
            (day,) = self.days
            if all_months:
                return f"on day {day} of every month"
            if len(self.months) == 1:
                (month,) = self.months
                return f"on {MONTH_LONG[month - 1]} {day}"
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

    def next_wall(self, start: datetime, stop: date) -> datetime | None:
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

    def previous_wall(self, start: datetime, stop: date) -> datetime | None:
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
