"""The limiter's pure logic: queue options, the sliding window's buckets, the fair share."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from oban_powertools import LimitOptionError
from oban_powertools.limits import window
from oban_powertools.limits.fairshare import Candidate, last_served, share
from oban_powertools.limits.options import (
    MAX_PERIOD,
    GlobalLimit,
    Partition,
    QueueLimits,
    RateLimit,
    parse_queue_limits,
)

BY_CUSTOMER = {"fields": ["args"], "keys": ["customer_id"]}

# -- options: every valid shape -------------------------------------------------------------


def test_oban_options_alone_are_no_limits() -> None:
    limits = parse_queue_limits("q", {"queue": "q", "limit": 5, "paused": False})
    assert limits == QueueLimits() and limits.empty and limits.partition is None
    assert limits.as_options() == {}


def test_global_limit_as_an_int() -> None:
    limits = parse_queue_limits("q", {"limit": 5, "global_limit": 3})
    assert limits.global_limit == GlobalLimit(3) and limits.rate_limit is None
    assert limits.as_options() == {"global_limit": 3}


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        ({"fields": ["worker"]}, Partition(("worker",))),
        (BY_CUSTOMER, Partition(("args",), ("customer_id",))),
        # Both, in either order: the fields are stored in one canonical order.
        (
            {"fields": ["args", "worker"], "keys": ["tenant", "region"]},
            Partition(("worker", "args"), ("tenant", "region")),
        ),
    ],
)
def test_global_limit_partitioned_by_worker_args_or_both(
    partition: dict[str, Any], expected: Partition
) -> None:
    limits = parse_queue_limits("q", {"global_limit": {"allowed": 1, "partition": partition}})
    assert limits.global_limit == GlobalLimit(1, expected)
    assert limits.partition == expected
    stored = limits.as_options()["global_limit"]
    assert stored == {"allowed": 1, "partition": expected.as_dict()}
    assert parse_queue_limits("q", limits.as_options()) == limits  # round trip


def test_global_limit_mapping_without_partition() -> None:
    assert parse_queue_limits("q", {"global_limit": {"allowed": 4}}).global_limit == GlobalLimit(4)


def test_rate_limit_plain_and_partitioned() -> None:
    plain = parse_queue_limits("q", {"rate_limit": {"allowed": 100, "period": 60}})
    assert plain.rate_limit == RateLimit(100, 60) and plain.partition is None
    keyed = parse_queue_limits(
        "q", {"rate_limit": {"allowed": 10, "period": 1, "partition": {"fields": ["worker"]}}}
    )
    assert keyed.rate_limit == RateLimit(10, 1, Partition(("worker",)))
    assert parse_queue_limits("q", keyed.as_options()) == keyed


def test_both_limits_one_partitioned_or_both_the_same() -> None:
    one = parse_queue_limits(
        "q",
        {"global_limit": 5, "rate_limit": {"allowed": 9, "period": 60, "partition": BY_CUSTOMER}},
    )
    assert one.global_limit == GlobalLimit(5)
    assert one.partition == Partition(("args",), ("customer_id",))
    same = parse_queue_limits(
        "q",
        {
            "global_limit": {"allowed": 1, "partition": BY_CUSTOMER},
            "rate_limit": {"allowed": 9, "period": 60, "partition": dict(BY_CUSTOMER)},
        },
    )
    assert same.global_limit is not None and same.rate_limit is not None
    assert same.global_limit.partition == same.rate_limit.partition


def test_the_longest_period_is_allowed() -> None:
    limits = parse_queue_limits("q", {"rate_limit": {"allowed": 1, "period": MAX_PERIOD}})
    assert limits.rate_limit == RateLimit(1, MAX_PERIOD)


# -- options: every bad input names the option --------------------------------------------

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"global_limt": 3}, "queues.q.global_limt", "not a queue option"),
    ({"limit": 2, "concurrency": 3}, "queues.q.concurrency", "not a queue option"),
    ({"global_limit": 0}, "queues.q.global_limit", "at least 1"),
    ({"global_limit": -2}, "queues.q.global_limit", "at least 1"),
    ({"global_limit": 2.5}, "queues.q.global_limit", "positive integer"),
    ({"global_limit": "10"}, "queues.q.global_limit", "positive integer"),
    ({"global_limit": True}, "queues.q.global_limit", "positive integer"),
    ({"global_limit": None}, "queues.q.global_limit", "positive integer"),
    ({"global_limit": {"allowed": 0}}, "queues.q.global_limit.allowed", "at least 1"),
    ({"global_limit": {"partition": BY_CUSTOMER}}, "queues.q.global_limit.allowed", "nothing"),
    ({"global_limit": {"allowed": 1, "max": 2}}, "queues.q.global_limit.max", "not an option"),
    ({"rate_limit": 100}, "queues.q.rate_limit", "must be a mapping"),
    ({"rate_limit": {"allowed": 10}}, "queues.q.rate_limit.period", "positive integer"),
    ({"rate_limit": {"period": 60}}, "queues.q.rate_limit.allowed", "positive integer"),
    ({"rate_limit": {"allowed": -1, "period": 60}}, "queues.q.rate_limit.allowed", "at least 1"),
    ({"rate_limit": {"allowed": 10, "period": 0}}, "queues.q.rate_limit.period", "at least 1"),
    ({"rate_limit": {"allowed": 10, "period": 1.5}}, "queues.q.rate_limit.period", "integer"),
    ({"rate_limit": {"allowed": False, "period": 9}}, "queues.q.rate_limit.allowed", "integer"),
    (
        {"rate_limit": {"allowed": 10, "period": MAX_PERIOD + 1}},
        "queues.q.rate_limit.period",
        "longer than the maximum",
    ),
    (
        {"rate_limit": {"allowed": 1, "period": 1, "window": 3}},
        "queues.q.rate_limit.window",
        "not an option",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": ["args"]}},
        "queues.q.global_limit.partition",
        "must be a mapping",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": [42]}}},
        "queues.q.global_limit.partition.keys",
        "non-empty strings",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": "customer"}}},
        "queues.q.global_limit.partition.keys",
        "list of strings",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": [" "]}}},
        "queues.q.global_limit.partition.keys",
        "non-empty strings",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": []}}},
        "queues.q.global_limit.partition.keys",
        "is empty",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"]}}},
        "queues.q.global_limit.partition.keys",
        "is empty",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["worker"], "keys": ["a"]}}},
        "queues.q.global_limit.partition.keys",
        "'args' is not among the fields",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": ["a", "a"]}}},
        "queues.q.global_limit.partition.keys",
        "repeats a key",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": ["queue"]}}},
        "queues.q.global_limit.partition.fields",
        "'worker' and/or 'args'",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": []}}},
        "queues.q.global_limit.partition.fields",
        "'worker' and/or 'args'",
    ),
    (
        {"global_limit": {"allowed": 1, "partition": {"fields": [3]}}},
        "queues.q.global_limit.partition.fields",
        "non-empty strings",
    ),
    (
        {"rate_limit": {"allowed": 1, "period": 1, "partition": {"by": ["worker"]}}},
        "queues.q.rate_limit.partition.by",
        "not an option",
    ),
    (
        {
            "global_limit": {"allowed": 1, "partition": {"fields": ["worker"]}},
            "rate_limit": {"allowed": 5, "period": 60, "partition": BY_CUSTOMER},
        },
        "queues.q",
        "partitioned differently",
    ),
]


@pytest.mark.parametrize(("options", "setting", "problem"), BAD)
def test_bad_options_raise_an_error_naming_the_option_and_the_fix(
    options: dict[str, Any], setting: str, problem: str
) -> None:
    with pytest.raises(LimitOptionError) as raised:
        parse_queue_limits("q", {"queue": "q", "limit": 3, **options})
    error = raised.value
    assert error.setting == setting
    assert problem in error.problem
    assert error.fix  # always says what to do instead
    assert str(error).startswith(f"{setting}: ")


# -- the sliding window ---------------------------------------------------------------------


def test_bucket_width_is_a_second_up_to_a_minute_then_a_sixtieth() -> None:
    assert [window.width(p) for p in (1, 2, 59, 60, 61, 120, 3600, MAX_PERIOD)] == [
        1,
        1,
        1,
        1,
        2,
        2,
        60,
        10080,
    ]


def test_bucket_end_is_after_the_start_and_resets_after_a_whole_period() -> None:
    for period in (1, 2, 60, 61, 3600):
        w = window.width(period)
        for now in (1_000.0, 1_000.2, 1_000.999, 1_001.0, 123_456.7):
            end = window.bucket_end(now, period)
            assert now < end <= now + w and end % w == 0
            # A start stays counted for at least the whole period after it (never too low)
            # and at most one bucket longer (forgotten at most one bucket late).
            assert window.resets_in(now, period, end) == pytest.approx(end + period - now)
            assert period < window.resets_in(now, period, end) <= period + w
    assert window.resets_in(10_000.0, 60, 9_000) == 0.0  # long gone: never negative
    assert window.window_floor(100.0, 60) == 40.0


def _epoch(local: datetime) -> float:
    return local.timestamp()


def test_a_window_across_midnight_utc_is_the_same_as_any_other() -> None:
    period = 60
    before = calendar.timegm((2026, 12, 31, 23, 59, 30, 0, 0, 0))
    after = before + 45  # 00:00:15 on the new year
    assert datetime.fromtimestamp(after, UTC).day == 1
    end = window.bucket_end(before, period)
    assert end == before + 1
    # The start half a minute before midnight still counts 15 s after it, and is gone
    # exactly one period after its bucket ends, as at noon.
    assert end > window.window_floor(after, period)
    assert window.resets_in(after, period, end) == pytest.approx(end + period - after)
    noon = calendar.timegm((2026, 12, 31, 12, 0, 0, 0, 0, 0)) + 30
    assert (
        window.bucket_end(noon + 0.5, period) - noon
        == window.bucket_end(before + 0.5, period) - before
    )


def test_a_daylight_saving_change_changes_nothing() -> None:
    # Europe/Berlin leaves summer time at 03:00 on 2026-10-25 (clocks go back an hour):
    # local wall time repeats 02:00-03:00, epoch seconds do not.
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 59, 50, tzinfo=berlin, fold=0)
    second = datetime(2026, 10, 25, 2, 0, 10, tzinfo=berlin, fold=1)  # after the change
    t1, t2 = _epoch(first), _epoch(second)
    assert t2 - t1 == 20  # 20 real seconds apart, though the wall clock went back
    period = 60
    end = window.bucket_end(t1, period)
    assert end > window.window_floor(t2, period)  # still counted 20 s later
    assert window.resets_in(t2, period, end) == pytest.approx(period - 19)


# -- the fair share -------------------------------------------------------------------------


def c(key: str, capacity: int) -> Candidate:
    return Candidate(key, capacity)


def test_share_is_round_robin_one_job_per_partition_per_round() -> None:
    candidates = [c("a", 100), c("b", 100), c("c", 100)]
    assert share(candidates, 7) == {"a": 3, "b": 2, "c": 2}
    assert last_served(candidates, share(candidates, 7)) == "a"
    assert share(candidates, 3) == {"a": 1, "b": 1, "c": 1}
    assert last_served(candidates, share(candidates, 3)) == "c"


def test_share_respects_each_partitions_capacity() -> None:
    candidates = [c("a", 1), c("b", 5), c("c", 2)]
    taken = share(candidates, 6)
    assert taken == {"a": 1, "b": 3, "c": 2}
    assert last_served(candidates, taken) == "b"
    assert share(candidates, 100) == {"a": 1, "b": 5, "c": 2}  # all they can take


def test_demand_smaller_than_the_partitions_serves_the_first_in_turn_order() -> None:
    candidates = [c("k", 50), c("a", 50), c("m", 50), c("z", 50)]
    taken = share(candidates, 2)
    assert taken == {"k": 1, "a": 1}
    assert last_served(candidates, taken) == "a"  # the next fetch starts with "m"


def test_zero_capacity_or_zero_demand_gives_nothing() -> None:
    assert share([c("a", 0), c("b", 3)], 2) == {"b": 2}
    assert share([c("a", 0), c("b", 0)], 5) == {}
    assert share([c("a", 4)], 0) == {} and share([c("a", 4)], -1) == {}
    assert share([], 5) == {}
    assert last_served([c("a", 0)], {}) is None


def test_a_hot_partition_gets_no_more_turns_than_a_small_one() -> None:
    # Fetches of demand 2 over two partitions, the turn moving as the limiter moves it:
    # the small partition is served every fetch until it runs out.
    hot, small = 10_000, 10
    turn: str | None = None
    fetches = 0
    while small:
        fetches += 1
        order = ["hot", "small"]
        if turn == "hot":
            order = ["small", "hot"]
        caps = {"hot": hot, "small": small}
        candidates = [c(k, caps[k]) for k in order if caps[k] > 0]
        taken = share(candidates, 2)
        turn = last_served(candidates, taken)
        hot -= taken.get("hot", 0)
        small -= taken.get("small", 0)
    assert fetches == 10 and 10_000 - hot == 10
