"""Cron expressions: parsing (oban-compatible), validation, and the DST-safe slot model."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from oban._scheduler import Expression as ObanExpression

from oban_powertools.cron.expression import CronExpression
from oban_powertools.cron.firing import due_minutes, fires_at, latest_due, next_fire, previous_fire
from oban_powertools.cron.timezones import load_timezone
from oban_powertools.errors import CronExpressionError, CronTimezoneError

MINUTE = timedelta(minutes=1)
UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def parse(text: str) -> CronExpression:
    return CronExpression.parse(text)


def brute_fires(
    expr: CronExpression, tz: ZoneInfo, start: datetime, end: datetime
) -> list[datetime]:
    """Reference: every UTC minute in [start, end) for which fires_at is true."""
    found = []
    minute = start
    while minute < end:
        if fires_at(expr, tz, minute):
            found.append(minute)
        minute += MINUTE
    return found


def local_day(tz: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """UTC bounds [start, end) of a wall-clock calendar day."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)
    return start, end


# -- parsing ------------------------------------------------------------------

FULL_MINUTES = frozenset(range(60))
FULL_HOURS = frozenset(range(24))
FULL_DAYS = frozenset(range(1, 32))
FULL_MONTHS = frozenset(range(1, 13))
FULL_WEEKDAYS = frozenset(range(7))


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("* * * * *", "minutes", FULL_MINUTES),
        ("7 * * * *", "minutes", {7}),
        ("07 * * * *", "minutes", {7}),
        ("10-13 * * * *", "minutes", {10, 11, 12, 13}),
        ("*/20 * * * *", "minutes", {0, 20, 40}),
        ("10-30/10 * * * *", "minutes", {10, 20, 30}),
        ("50/3 * * * *", "minutes", {50, 53, 56, 59}),
        ("1,5,10-12,*/30 * * * *", "minutes", {0, 1, 5, 10, 11, 12, 30}),
        ("* */6 * * *", "hours", {0, 6, 12, 18}),
        ("* 22/1 * * *", "hours", {22, 23}),
        ("* * */10 * *", "days", {1, 11, 21, 31}),
        ("* * 29 2 *", "days", {29}),
        ("* * * */4 *", "months", {1, 5, 9}),
        ("* * * JAN,jun,Dec *", "months", {1, 6, 12}),
        ("* * * mar-May *", "months", {3, 4, 5}),
        ("* * * FEB/5 *", "months", {2, 7, 12}),
        ("* * * * mon-FRI", "weekdays", {1, 2, 3, 4, 5}),
        ("* * * * sat,Sun", "weekdays", {0, 6}),
        ("* * * * 7", "weekdays", {0}),
        ("* * * * 5-7", "weekdays", {0, 5, 6}),
        ("* * * * 0-7", "weekdays", FULL_WEEKDAYS),
        ("* * * * */2", "weekdays", {0, 2, 4, 6}),
        ("* * * * 1/2", "weekdays", {0, 1, 3, 5}),
        ("* * * * *", "weekdays", FULL_WEEKDAYS),
        ("  0\t0  * *   *  ", "minutes", {0}),
    ],
)
def test_parse_forms(text: str, field: str, expected: set[int]) -> None:
    assert getattr(parse(text), field) == frozenset(expected)


@pytest.mark.parametrize(
    ("nickname", "equivalent"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@DAILY", "0 0 * * *"),
        ("@Weekly", "0 0 * * 0"),
        (" @hourly\n", "0 * * * *"),
    ],
)
def test_nicknames(nickname: str, equivalent: str) -> None:
    parsed, plain = parse(nickname), parse(equivalent)
    assert parsed.source == nickname
    assert (parsed.minutes, parsed.hours, parsed.days, parsed.months, parsed.weekdays) == (
        plain.minutes,
        plain.hours,
        plain.days,
        plain.months,
        plain.weekdays,
    )


def test_parsed_value_is_frozen_typed_and_hashable() -> None:
    expr = parse("0 9 * * MON-FRI")
    assert isinstance(expr.minutes, frozenset)
    assert expr == parse("0 9 * * MON-FRI")
    assert hash(expr) == hash(parse("0 9 * * MON-FRI"))
    with pytest.raises(AttributeError):
        expr.source = "x"  # type: ignore[misc]


OBAN_CORPUS = [
    "* * * * *",
    "0 * * * *",
    "*/15 * * * *",
    "*/7 * * * *",
    "5 4 * * *",
    "0 0 1 * *",
    "0 0 1 1 *",
    "59 23 31 12 *",
    "0 9-17 * * 1-5",
    "0 9-17 * * MON-FRI",
    "15,45 * * * *",
    "0-10/2 * * * *",
    "0-59/7 * * * *",
    "5/10 * * * *",
    "1/1 * * * *",
    "0 */3 * * *",
    "0 8-18/2 * * *",
    "0,30 8-18/2 * * 1-5",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * 5-7",
    "0 0 * * 7/1",
    "0 0 * * */2",
    "0 0 * * */3",
    "0 0 * * 1/2",
    "30 2 * * SUN",
    "0 22 * * MON,WED,FRI",
    "0 12 * * SAT,SUN",
    "0 0 */7 * *",
    "0 0 1-31/2 * *",
    "0 0 10/5 * *",
    "0 0 29 2 *",
    "0 0 15 * 3-5",
    "0 0 1 JAN *",
    "0 0 1 JAN-MAR *",
    "0 0 1 */3 *",
    "0 12 * JUN-AUG SAT,SUN",
    "45 23 * DEC *",
    "0 0 * FEB,AUG THU",
    "1,2,3 4,5 6,7 8,9 1,2",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
]


@pytest.mark.parametrize("text", OBAN_CORPUS)
def test_same_sets_as_oban(text: str) -> None:
    ours = parse(text)
    theirs = ObanExpression.parse(text)
    assert set(ours.minutes) == theirs.minutes
    assert set(ours.hours) == theirs.hours
    assert set(ours.days) == theirs.days
    assert set(ours.months) == theirs.months
    assert set(ours.weekdays) == theirs.weekdays


@pytest.mark.parametrize("text", OBAN_CORPUS)
def test_matches_agrees_with_oban_is_now(text: str) -> None:
    ours = parse(text)
    theirs = ObanExpression.parse(text)
    rng = random.Random(text)
    for _ in range(50):
        moment = datetime(2024, 1, 1) + timedelta(minutes=rng.randrange(60 * 24 * 366))
        assert ours.matches(moment) == theirs.is_now(moment)


def test_matches_uses_wall_clock_fields_and_and_semantics() -> None:
    friday_13th = parse("0 0 13 * FRI")
    assert friday_13th.matches(datetime(2025, 6, 13, 0, 0))  # a Friday
    assert not friday_13th.matches(datetime(2025, 7, 13, 0, 0))  # the 13th, a Sunday
    assert not friday_13th.matches(datetime(2025, 6, 6, 0, 0))  # a Friday, not the 13th
    aware = datetime(2025, 6, 13, 0, 0, 42, tzinfo=NEW_YORK)
    assert friday_13th.matches(aware)


def test_canonical_round_trips() -> None:
    for text in OBAN_CORPUS + ["0 0 * * 1,3-5", "1,2,4 * * * *", "0 0 1-31/2 * *"]:
        expr = parse(text)
        again = parse(expr.canonical())
        assert (again.minutes, again.hours, again.days, again.months, again.weekdays) == (
            expr.minutes,
            expr.hours,
            expr.days,
            expr.months,
            expr.weekdays,
        ), text
    assert parse("0 9-17 * * MON-FRI").canonical() == "0 9-17 * * 1-5"
    assert parse("*/15 * * * 7").canonical() == "*/15 * * * 0"


@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("@hourly", "every hour"),
        ("5 * * * *", "every hour at :05"),
        ("0 */2 * * *", "every 2 hours"),
        ("0 2 * * *", "at 02:00 every day"),
        ("@daily", "at 00:00 every day"),
        ("30 9 * * MON-FRI", "at 09:30 on weekdays"),
        ("0 10 * * sat,sun", "at 10:00 on weekends"),
        ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
        ("@weekly", "at 00:00 on Sunday"),
        ("0 8 * * 1,3", "at 08:00 on Monday and Wednesday"),
        ("@monthly", "at 00:00 on day 1 of every month"),
        ("@yearly", "at 00:00 on January 1"),
        ("*/10 * * * 1-5", "every 10 minutes on weekdays"),
        ("*/7 * * * *", "*/7 * * * *"),
        ("15 9-17 1,15 * *", "15 9-17 1,15 * *"),
    ],
)
def test_describe(text: str, description: str) -> None:
    assert parse(text).describe() == description


# -- validation -----------------------------------------------------------------

BAD_EXPRESSIONS = [
    ("", "cron expression is empty"),
    (" \t ", "cron expression is empty"),
    ("* * *", "expected 5 fields (minute hour day month weekday), got 3"),
    ("* * * * * *", "expected 5 fields (minute hour day month weekday), got 6"),
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "day field: 0 is out of range 1-31"),
    ("* * 1-32 * *", "day field: 32 is out of range 1-31"),
    ("* * * 13 *", "month field: 13 is out of range 1-12"),
    ("* * * * 8", "weekday field: 8 is out of range 0-7"),
    ("70/5 * * * *", "minute field: 70 is out of range 0-59"),
    ("5-2 * * * *", "minute field: range 5-2 is reversed"),
    ("* * * * FRI-MON", "weekday field: range FRI-MON is reversed"),
    ("*/0 * * * *", "minute field: step must be between 1 and 60"),
    ("*/61 * * * *", "minute field: step must be between 1 and 60"),
    ("* 0-23/25 * * *", "hour field: step must be between 1 and 24"),
    ("0 0 31 2 *", "never matches: day 31 never occurs in FEB"),
    ("0 0 30,31 2 *", "never matches"),
    ("0 0 31 APR,JUN,SEP,NOV *", "never matches"),
    ("@fortnightly", "unknown nickname '@fortnightly'"),
    ("@daily 5", "unknown nickname"),
    ("* * * FOO *", "month field: unknown alias 'FOO' (expected JAN-DEC)"),
    ("* * * * MONDAY", "weekday field: unknown alias 'MONDAY' (expected SUN-SAT)"),
    ("* * * * JAN", "weekday field: unknown alias 'JAN'"),
    ("MON * * * *", "minute field: names such as 'MON' are only allowed"),
    ("* * L * *", "day field: names such as 'L'"),
    ("1,,2 * * * *", "minute field: empty list item"),
    ("1, * * * *", "minute field: empty list item"),
    ("? * * * *", "minute field: cannot parse '?'"),
    ("1-2-3 * * * *", "minute field: cannot parse"),
    ("*/ * * * *", "minute field: cannot parse"),
    ("-5 * * * *", "minute field: cannot parse"),
    ("1.5 * * * *", "minute field: cannot parse"),
    ("* * * * 1#2", "weekday field: cannot parse"),
    ("\uff11 * * * *", "minute field: cannot parse"),  # fullwidth digit one
    ("* * * * \u0663", "weekday field: cannot parse"),  # Arabic-Indic digit three
    ("\x00 * * * *", "minute field: cannot parse"),
    ("*\u00a0* * * *", "expected 5 fields"),  # no-break space is not a separator
]


@pytest.mark.parametrize(("text", "fragment"), BAD_EXPRESSIONS)
def test_rejects_bad_expressions(text: str, fragment: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_leap_day_is_allowed() -> None:
    assert parse("0 0 29 2 *").days == frozenset({29})
    assert parse("0 0 30,31 * *").days == frozenset({30, 31})
    assert parse("0 0 31 1,2 *").months == frozenset({1, 2})


def test_rejects_non_strings() -> None:
    with pytest.raises(CronExpressionError, match="must be a string"):
        parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("*/1," * 10000, "too long"),
        ("1" * 10000 + " * * * *", "too long"),
        ("9" * 240 + " * * * *", "is out of range 0-59"),
        ("*/" + "9" * 240 + " * * * *", "step must be between 1 and 60"),
        ("0-" + "9" * 240 + " * * * *", "is out of range 0-59"),
        (",".join(["1"] * 101) + " * * * *", "too many list items"),
        ("1-" * 120 + " * * * *", "cannot parse"),
        ("-" * 240 + " * * * *", "cannot parse"),
        ("*" * 240 + " * * * *", "cannot parse"),
        ("a" * 240 + " * * * *", "names such as"),
        ("* * * * " + "A" * 245, "unknown alias"),
        ("\x00" * 200, "expected 5 fields"),
        ("\uff11" * 200 + " * * * *", "cannot parse"),
        ("@" + "x" * 300, "too long"),
        (" " * 10000, "too long"),
    ],
)
def test_pathological_inputs_fail_fast(text: str, fragment: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 300  # messages are clipped, never echo the whole input


def test_repeated_ranges_within_limits_parse() -> None:
    text = ",".join(["0-59"] * 49) + " * * * *"
    assert len(text) <= 256
    assert parse(text).minutes == FULL_MINUTES


def test_direct_construction_is_validated() -> None:
    good = CronExpression(
        "x", frozenset({0}), frozenset({0}), FULL_DAYS, FULL_MONTHS, FULL_WEEKDAYS
    )
    assert good.matches(datetime(2025, 1, 1))
    with pytest.raises(CronExpressionError, match="weekdays"):
        CronExpression("x", frozenset({0}), frozenset({0}), FULL_DAYS, FULL_MONTHS, frozenset({7}))
    with pytest.raises(CronExpressionError, match="minutes: no values"):
        CronExpression("x", frozenset(), frozenset({0}), FULL_DAYS, FULL_MONTHS, FULL_WEEKDAYS)
    with pytest.raises(CronExpressionError, match="never matches"):
        CronExpression(
            "x", frozenset({0}), frozenset({0}), frozenset({30}), frozenset({2}), FULL_WEEKDAYS
        )


# -- time zones -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["UTC", "America/New_York", "Europe/Berlin", "Etc/GMT+5", "America/Argentina/Salta"]
)
def test_load_timezone(name: str) -> None:
    assert load_timezone(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Base",
        "",
        "../../etc/passwd",
        "/etc/passwd",
        "America/../UTC",
        "./UTC",
        "America",
        "America/",
        "Europe/Berlin\x00",
        "Europe/Berlín",
        "A" * 65,
        "Europe/" + "x" * 10000,
        "zone.tab",
    ],
)
def test_load_timezone_rejects(name: str) -> None:
    with pytest.raises(CronTimezoneError, match="unknown time zone"):
        load_timezone(name)


def test_load_timezone_message() -> None:
    with pytest.raises(CronTimezoneError) as info:
        load_timezone("Mars/Base")
    assert str(info.value) == "unknown time zone 'Mars/Base'"
    assert isinstance(info.value, ValueError)


# -- the slot model across DST --------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        (NEW_YORK, date(2025, 3, 9), [utc(2025, 3, 9, 7, 0)]),  # 03:00 EDT, first after gap
        (BERLIN, date(2025, 3, 30), [utc(2025, 3, 30, 1, 0)]),  # 03:00 CEST
    ],
)
def test_skipped_time_fires_once_at_first_minute_after_gap(
    tz: ZoneInfo, day: date, expected: list[datetime]
) -> None:
    expr = parse("30 2 * * *")
    start, end = local_day(tz, day)
    assert brute_fires(expr, tz, start, end) == expected
    assert due_minutes(expr, tz, start - MINUTE, end - MINUTE, limit=10) == expected
    assert next_fire(expr, tz, start) == expected[0]
    assert previous_fire(expr, tz, end) == expected[0]
    assert latest_due(expr, tz, start - MINUTE, end) == expected[0]


def test_whole_skipped_hour_collapses_into_one_slot() -> None:
    expr = parse("* 2 * * *")
    start, end = local_day(NEW_YORK, date(2025, 3, 9))
    assert brute_fires(expr, NEW_YORK, start, end) == [utc(2025, 3, 9, 7, 0)]
    assert due_minutes(expr, NEW_YORK, start, end, limit=100) == [utc(2025, 3, 9, 7, 0)]


@pytest.mark.parametrize(
    ("tz", "day", "text", "expected"),
    [
        (NEW_YORK, date(2025, 11, 2), "30 1 * * *", [utc(2025, 11, 2, 5, 30)]),  # EDT pass
        (BERLIN, date(2025, 10, 26), "30 2 * * *", [utc(2025, 10, 26, 0, 30)]),  # CEST pass
    ],
)
def test_repeated_time_fires_once_at_first_occurrence(
    tz: ZoneInfo, day: date, text: str, expected: list[datetime]
) -> None:
    expr = parse(text)
    start, end = local_day(tz, day)
    assert brute_fires(expr, tz, start, end) == expected
    assert due_minutes(expr, tz, start - MINUTE, end - MINUTE, limit=10) == expected
    second_pass = expected[0] + timedelta(hours=1)
    assert not fires_at(expr, tz, second_pass)
    # The next day is in standard time: 25 real hours later.
    assert next_fire(expr, tz, expected[0]) == expected[0] + timedelta(hours=25)
    assert previous_fire(expr, tz, second_pass + MINUTE) == expected[0]


@pytest.mark.parametrize(
    ("tz", "day", "hours", "quarter_slots", "hourly_slots"),
    [
        (NEW_YORK, date(2025, 3, 9), 23, 92, 23),
        (BERLIN, date(2025, 3, 30), 23, 92, 23),
        (NEW_YORK, date(2025, 11, 2), 25, 96, 24),
        (BERLIN, date(2025, 10, 26), 25, 96, 24),
        (UTC_ZONE, date(2025, 3, 9), 24, 96, 24),
        (UTC_ZONE, date(2025, 11, 2), 24, 96, 24),
    ],
)
def test_slot_counts_over_transition_days(
    tz: ZoneInfo, day: date, hours: int, quarter_slots: int, hourly_slots: int
) -> None:
    start, end = local_day(tz, day)
    assert end - start == timedelta(hours=hours)
    quarter = parse("*/15 * * * *")
    hourly = parse("0 * * * *")
    assert len(brute_fires(quarter, tz, start, end)) == quarter_slots
    assert len(due_minutes(quarter, tz, start - MINUTE, end - MINUTE, limit=1000)) == quarter_slots
    assert len(brute_fires(hourly, tz, start, end)) == hourly_slots
    assert len(due_minutes(hourly, tz, start - MINUTE, end - MINUTE, limit=1000)) == hourly_slots


def test_every_wall_minute_fires_exactly_once_across_transitions() -> None:
    """Over a fall-back and a spring-forward day, each wall minute of the local day
    is covered by exactly one slot (skipped ones by the post-gap slot)."""
    expr = parse("* * * * *")
    for tz, day, expected_slots in [
        (NEW_YORK, date(2025, 11, 2), 24 * 60),  # 25 real hours, 24 distinct wall hours
        (NEW_YORK, date(2025, 3, 9), 23 * 60),  # the skipped hour rides on 03:00
    ]:
        start, end = local_day(tz, day)
        slots = brute_fires(expr, tz, start, end)
        assert len(slots) == expected_slots
        walls = {slot.astimezone(tz).replace(tzinfo=None) for slot in slots}
        assert len(walls) == len(slots)


def test_utc_hourly_is_plain() -> None:
    expr = parse("0 * * * *")
    start = utc(2025, 3, 8)
    slots = due_minutes(expr, UTC_ZONE, start - MINUTE, start + timedelta(days=3), limit=1000)
    assert slots == [start + timedelta(hours=h) for h in range(3 * 24 + 1)]


# -- search functions ---------------------------------------------------------------


def test_rare_expressions_are_found_far_away() -> None:
    start = utc(2025, 1, 1)
    assert next_fire(parse("@yearly"), UTC_ZONE, start) == utc(2026, 1, 1)
    assert previous_fire(parse("@yearly"), UTC_ZONE, start) == utc(2024, 1, 1)
    assert next_fire(parse("0 0 29 2 *"), UTC_ZONE, start) == utc(2028, 2, 29)
    assert previous_fire(parse("0 0 29 2 *"), BERLIN, start) == utc(2024, 2, 28, 23, 0)
    monday_leap_day = parse("0 0 29 2 MON")
    assert next_fire(monday_leap_day, UTC_ZONE, start) == utc(2044, 2, 29)
    assert previous_fire(monday_leap_day, UTC_ZONE, start) == utc(2016, 2, 29)


@pytest.mark.parametrize("weekday", range(7))
def test_leap_day_weekday_across_a_non_leap_century(weekday: int) -> None:
    """Feb 29 on a given weekday can be 40 years apart across 2100; still found."""
    leap_days = [
        date(year, 2, 29)
        for year in range(2060, 2200)
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    ]
    matching = [d for d in leap_days if d.isoweekday() % 7 == weekday]
    expr = parse(f"0 0 29 2 {weekday}")
    for earlier, later in zip(matching, matching[1:], strict=False):
        found = next_fire(expr, UTC_ZONE, utc(earlier.year, 2, 29))
        assert found == utc(later.year, 2, 29)
        assert previous_fire(expr, UTC_ZONE, found) == utc(earlier.year, 2, 29)


def test_range_ends_return_none() -> None:
    assert next_fire(parse("@yearly"), UTC_ZONE, utc(9999, 6, 1)) is None
    assert previous_fire(parse("@yearly"), UTC_ZONE, utc(1, 6, 1)) is None
    every = parse("* * * * *")
    far_future = datetime.max.replace(tzinfo=UTC)
    far_past = datetime.min.replace(tzinfo=UTC)
    assert next_fire(every, UTC_ZONE, far_future) is None
    assert previous_fire(every, UTC_ZONE, far_past) is None
    assert previous_fire(every, UTC_ZONE, far_future) is not None
    assert next_fire(every, UTC_ZONE, far_past) is not None
    assert due_minutes(every, NEW_YORK, far_future - MINUTE, far_future, limit=5) == []
    assert latest_due(every, NEW_YORK, far_past, far_past + MINUTE) is None


def test_due_minutes_limit_and_bounds() -> None:
    expr = parse("*/10 * * * *")
    after, until = utc(2025, 5, 1, 12, 0), utc(2025, 5, 1, 13, 0)
    everything = due_minutes(expr, UTC_ZONE, after, until, limit=100)
    assert everything[0] == utc(2025, 5, 1, 12, 10)  # strictly after `after`
    assert everything[-1] == until  # `until` included
    assert len(everything) == 6
    assert due_minutes(expr, UTC_ZONE, after, until, limit=2) == everything[:2]
    assert due_minutes(expr, UTC_ZONE, after, until, limit=0) == []
    assert latest_due(expr, UTC_ZONE, after, until) == until
    assert latest_due(expr, UTC_ZONE, after, after + timedelta(minutes=9)) is None
    assert due_minutes(expr, UTC_ZONE, until, after, limit=10) == []
    with pytest.raises(ValueError, match="limit"):
        due_minutes(expr, UTC_ZONE, after, until, limit=-1)


def test_seconds_in_bounds_are_respected() -> None:
    expr = parse("* * * * *")
    at = utc(2025, 5, 1, 12, 0)
    assert next_fire(expr, UTC_ZONE, at + timedelta(seconds=30)) == at + MINUTE
    assert previous_fire(expr, UTC_ZONE, at + timedelta(seconds=30)) == at
    assert previous_fire(expr, UTC_ZONE, at) == at - MINUTE
    assert next_fire(expr, UTC_ZONE, at.astimezone(NEW_YORK)) == at + MINUTE


def test_naive_and_unaligned_inputs_are_rejected() -> None:
    expr = parse("* * * * *")
    naive = datetime(2025, 1, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        fires_at(expr, UTC_ZONE, naive)
    with pytest.raises(ValueError, match="truncated to the minute"):
        fires_at(expr, UTC_ZONE, utc(2025, 1, 1, 0, 0, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(expr, UTC_ZONE, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        previous_fire(expr, UTC_ZONE, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_minutes(expr, UTC_ZONE, utc(2025, 1, 1), naive, limit=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        latest_due(expr, UTC_ZONE, naive, utc(2025, 1, 1))


def test_results_are_utc_minutes() -> None:
    found = next_fire(parse("30 2 * * *"), BERLIN, utc(2025, 6, 1, 0, 0, 17))
    assert found == utc(2025, 6, 1, 0, 30)  # 02:30 CEST
    assert found is not None and found.tzinfo is UTC


# -- against a minute-by-minute reference --------------------------------------------

WINDOW_ZONES = [
    ("America/New_York", [date(2025, 3, 9), date(2025, 11, 2)]),
    ("Europe/Berlin", [date(2025, 3, 30), date(2025, 10, 26)]),
    ("Australia/Lord_Howe", [date(2025, 4, 6), date(2025, 10, 5)]),  # 30-minute DST
    ("Australia/Sydney", [date(2025, 4, 6), date(2025, 10, 5)]),
    ("Pacific/Apia", [date(2011, 12, 29)]),  # skipped all of 2011-12-30
    ("America/St_Johns", [date(2025, 3, 9), date(2025, 11, 2)]),
    ("Asia/Kolkata", [date(2025, 6, 1)]),
    ("UTC", [date(2024, 2, 28)]),
]


def random_field(rng: random.Random, low: int, high: int, names: tuple[str, ...] = ()) -> str:
    def value() -> str:
        number = rng.randint(low, high)
        if names and rng.random() < 0.3:
            return names[number - low] if number - low < len(names) else str(number)
        return str(number)

    items = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        form = rng.randrange(5)
        if form == 0:
            items.append(value())
        elif form == 1:
            a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
            items.append(f"{a}-{b}")
        elif form == 2:
            items.append(f"*/{rng.randint(1, min(20, high - low + 1))}")
        elif form == 3:
            a, b = sorted((rng.randint(low, high), rng.randint(low, high)))
            items.append(f"{a}-{b}/{rng.randint(1, 10)}")
        else:
            items.append(f"{rng.randint(low, high)}/{rng.randint(1, 10)}")
    return ",".join(items)


def random_expression(rng: random.Random) -> CronExpression:
    while True:
        minute = "*" if rng.random() < 0.1 else random_field(rng, 0, 59)
        hour = "*" if rng.random() < 0.4 else random_field(rng, 0, 23)
        day = "*" if rng.random() < 0.7 else random_field(rng, 1, 31)
        month = "*" if rng.random() < 0.8 else random_field(rng, 1, 12)
        weekday = "*" if rng.random() < 0.6 else random_field(rng, 0, 7)
        try:
            return parse(f"{minute} {hour} {day} {month} {weekday}")
        except CronExpressionError:
            continue


def test_search_agrees_with_minute_by_minute_reference() -> None:
    rng = random.Random(20250309)
    cases = 0
    for zone_name, days in WINDOW_ZONES:
        tz = load_timezone(zone_name)
        for _ in range(5):
            day = rng.choice(days)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(
                minutes=rng.randrange(36 * 60)
            )
            end = start + timedelta(days=2)
            # Half the time a gap/fold-heavy shape, otherwise fully random.
            if rng.random() < 0.5:
                expr = parse(
                    f"{random_field(rng, 0, 59)} {rng.choice(['*', '1-3', '2', '0,2,3'])} * * *"
                )
            else:
                expr = random_expression(rng)
            reference = brute_fires(expr, tz, start, end)
            for _ in range(5):
                cases += 1
                probe = start + timedelta(seconds=rng.randrange(2 * 24 * 3600))
                if rng.random() < 0.5:
                    probe = probe.replace(second=0)
                later = [m for m in reference if m > probe]
                earlier = [m for m in reference if m < probe]
                found = next_fire(expr, tz, probe)
                if later:
                    assert found == later[0], (expr.source, zone_name, probe)
                else:
                    assert found is None or found >= end, (expr.source, zone_name, probe)
                found = previous_fire(expr, tz, probe)
                if earlier:
                    assert found == earlier[-1], (expr.source, zone_name, probe)
                else:
                    assert found is None or found < start, (expr.source, zone_name, probe)
                until = probe + timedelta(minutes=rng.randrange(24 * 60))
                expected = [m for m in reference if probe < m <= until and m < end]
                if until < end:
                    assert due_minutes(expr, tz, probe, until, limit=5000) == expected
                    assert latest_due(expr, tz, probe, until) == (
                        expected[-1] if expected else None
                    ), (expr.source, zone_name, probe, until)
            for minute in reference:
                assert minute.tzinfo is UTC
    assert cases >= 200


@pytest.mark.parametrize(
    "zone",
    ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata"],
)
def test_the_owner_shortcut_agrees_with_the_search(zone: str) -> None:
    # _owner answers ordinary wall times without searching; the search is the reference.
    # Walls near every transition of 2010-2030 (where the shortcut must step aside) plus
    # random ones; Lord Howe shifts by 30 minutes, Apia skipped a whole day in 2011.
    from oban_powertools.cron.firing import _owner, _owner_by_search

    tz = ZoneInfo(zone)
    walls: list[datetime] = []
    instant = datetime(2010, 1, 1, tzinfo=UTC)
    previous = instant.astimezone(tz).utcoffset()
    while instant < datetime(2031, 1, 1, tzinfo=UTC):
        offset = instant.astimezone(tz).utcoffset()
        if offset != previous:
            local = instant.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
            walls += [local + timedelta(minutes=m) for m in range(-150, 150, 7)]
            previous = offset
        instant += timedelta(hours=1)
    rng = random.Random(7)
    walls += [
        datetime(2010, 1, 1) + timedelta(minutes=rng.randrange(0, 21 * 365 * 24 * 60))
        for _ in range(2000)
    ]
    for wall in walls:
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        assert _owner(wall, tz) == _owner_by_search(wall, tz, first, second), wall
