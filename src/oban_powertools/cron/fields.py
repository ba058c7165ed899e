"""The grammar of one cron field: its range, names, list items and canonical text.

:class:`~oban_powertools.cron.expression.CronExpression` splits an expression into five
fields and hands each to :func:`parse_field`; the item grammar is one regular
expression without nested repetition, and no loop depends on the size of a number in
the input, so parsing stays linear in the (capped) text length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CronExpressionError

MAX_LIST_ITEMS = 100
"""Most comma-separated items accepted in one field."""

FIELD_NAMES = "minute hour day month weekday"

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTH_ALIASES = {name: number for number, name in enumerate(MONTH_NAMES, start=1)}
_WEEKDAY_ALIASES = {name: number for number, name in enumerate(_WEEKDAY_NAMES)}

MONTH_LONG = (
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
WEEKDAY_LONG = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Month lengths in a leap year: a (month, day) pair is possible iff it fits here.
LEAP_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

NICKNAMES = {
    "@annually": "0 0 1 1 *",
    "@yearly": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@midnight": "0 0 * * *",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}

WHITESPACE = " \t\r\n\f\v"
FIELD_SPLIT = re.compile(r"[ \t\r\n\f\v]+")
# One list item.  The alternatives use disjoint character classes and nothing
# repeats a repetition, so matching is linear in the item length.
_VALUE = r"[0-9]+|[A-Za-z]+"
_ITEM = re.compile(rf"(?:(\*)|({_VALUE})(?:-({_VALUE}))?)(?:/([0-9]+))?")
_ITEM_FORMS = "*, N, A-B, */S, A-B/S or N/S"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    low: int
    high: int
    aliases: dict[str, int] | None
    alias_hint: str

    @property
    def span(self) -> int:
        return self.high - self.low + 1


_MINUTE_FIELD = Field("minute", 0, 59, None, "")
_HOUR_FIELD = Field("hour", 0, 23, None, "")
_DAY_FIELD = Field("day", 1, 31, None, "")
_MONTH_FIELD = Field("month", 1, 12, _MONTH_ALIASES, "JAN-DEC")
# 0-7 on input (7 is Sunday, as in oban); folded to 0-6 after parsing.
_WEEKDAY_FIELD = Field("weekday", 0, 7, _WEEKDAY_ALIASES, "SUN-SAT")
FIELDS = (_MINUTE_FIELD, _HOUR_FIELD, _DAY_FIELD, _MONTH_FIELD, _WEEKDAY_FIELD)


def clip(text: str, limit: int = 20) -> str:
    """``repr`` of ``text``, shortened so error messages stay readable."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def _show_number(token: str) -> str:
    """A number from the input for an error message (huge ones are clipped)."""
    if len(token) > 12:
        return clip(token)
    return str(int(token))


def _parse_value(spec: Field, token: str) -> int:
    if token[0].isdigit():  # the regex guarantees ASCII digits here
        number = int(token)  # at most MAX_EXPRESSION_LENGTH digits
        if not spec.low <= number <= spec.high:
            raise CronExpressionError(
                f"{spec.name} field: {_show_number(token)} is out of range {spec.low}-{spec.high}"
            )
        return number
    if spec.aliases is None:
        raise CronExpressionError(
            f"{spec.name} field: names such as {clip(token)} are only allowed "
            "in the month and weekday fields"
        )
    value = spec.aliases.get(token.upper())
    if value is None:
        raise CronExpressionError(
            f"{spec.name} field: unknown alias {clip(token)} (expected {spec.alias_hint})"
        )
    return value


def _parse_item(spec: Field, item: str) -> range:
    if not item:
        raise CronExpressionError(f"{spec.name} field: empty list item")
    match = _ITEM.fullmatch(item)
    if match is None:
        raise CronExpressionError(
            f"{spec.name} field: cannot parse {clip(item)} (expected {_ITEM_FORMS})"
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


def parse_field(spec: Field, text: str) -> frozenset[int]:
    items = text.split(",", MAX_LIST_ITEMS)
    if len(items) > MAX_LIST_ITEMS:
        raise CronExpressionError(
            f"{spec.name} field: too many list items (at most {MAX_LIST_ITEMS})"
        )
    values: set[int] = set()
    for item in items:
        values.update(_parse_item(spec, item))
    return frozenset(values)


def compress(values: frozenset[int], low: int, high: int) -> str:
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


def every_step(values: frozenset[int], low: int, high: int) -> int | None:
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
