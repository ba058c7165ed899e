"""Pure parts of the overview at a glance: grouping by cause and the chart's geometry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from oban_powertools.read_models.common import Count
from oban_powertools.read_models.failures import NO_ERROR, group_failures
from oban_powertools.read_models.job_failures import FailingWorker
from oban_powertools.read_models.rollups import Activity, Bucket, window_of
from oban_powertools.web.charts import (
    activity_chart,
    in_words,
    nice_ceiling,
    nice_wait_ceiling,
    wait_text,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def worker(name: str, error: str, minutes_ago: int, *, discarded: int = 0) -> FailingWorker:
    return FailingWorker(
        worker=name,
        queues=["default"],
        failures=1 + discarded,
        retryable=1,
        discarded=discarded,
        last_failed_at=T0 - timedelta(minutes=minutes_ago),
        last_job_id=minutes_ago,
        last_error=error,
        sampled=False,
    )


def test_workers_group_by_error_class_and_message_most_recent_first() -> None:
    groups = group_failures(
        [
            worker("a", "TimeoutError: upstream", 9),
            worker("b", "ValueError: bad row 7", 1),
            worker("c", "TimeoutError:  upstream", 3, discarded=2),  # same, spacing aside
            worker("d", "", 5),
        ]
    )
    assert [(g.cause, [w.worker for w in g.workers]) for g in groups] == [
        ("ValueError: bad row 7", ["b"]),
        ("TimeoutError: upstream", ["c", "a"]),
        (NO_ERROR, ["d"]),
    ]
    timeout = groups[1]
    assert (timeout.retryable, timeout.discarded, timeout.error_class) == (2, 2, "TimeoutError")
    assert timeout.last_failed_at == T0 - timedelta(minutes=3)
    assert groups[2].error_class == ""


def test_axis_maximum_and_words() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 3, 10, 11, 180, 1036)] == [1, 1, 5, 10, 20, 200, 2000]
    assert in_words(Count(1200, "estimate")) == "about 1,200"
    assert in_words(Count(250, "at_least")) == "at least 250"
    assert in_words(Count(7)) == "7"


def bucket(
    at: datetime, completed: int = 0, discarded: int = 0, retried: int = 0, **kw: int
) -> Bucket:
    return Bucket(at, Count(completed), Count(discarded), Count(retried), Count(0), **kw)


def test_bars_stack_failures_and_scale_to_the_busiest_minute() -> None:
    buckets = [bucket(T0 + timedelta(minutes=i)) for i in range(60)]
    buckets[10] = bucket(T0 + timedelta(minutes=10), 50, 2, 3)
    buckets[20] = bucket(T0 + timedelta(minutes=20), 100, 0, 1)
    hour = Activity("hour", buckets, None, T0 + timedelta(hours=1), "node-1")
    done = activity_chart(hour, "completed")
    assert [b.height for b in done.bars] == [40.0, 80.0]  # 100 is the axis maximum
    assert done.bars[0].label == "12:10 UTC: 50 completed"
    assert done.title == "Completed jobs per minute, last hour"
    assert (
        done.desc == "150 jobs completed in the last hour; the busiest minute, 12:20 UTC, had 100."
    )
    failed = activity_chart(hour, "failed")
    discarded, retried, single = failed.bars
    assert (discarded.css, retried.css) == ("bar-discarded", "bar-retryable")
    assert discarded.y + 0 == retried.y + retried.height  # stacked: retried on top
    assert single.css == "bar-retryable"
    assert failed.desc.startswith("6 failures in the last hour: 2 discarded, 4 errored and retried")


def test_the_day_chart_has_hourly_bars_and_the_wait_chart_a_mean() -> None:
    buckets = [bucket(T0 + timedelta(hours=i)) for i in range(24)]
    buckets[3] = bucket(
        T0 + timedelta(hours=3), 10, wait_count=4, wait_ms_sum=6000, wait_ms_max=3000
    )
    buckets[5] = bucket(
        T0 + timedelta(hours=5), 1, wait_count=1, wait_ms_sum=90_000, wait_ms_max=90_000
    )
    buckets[23] = replace(buckets[23], pending=True)
    day = Activity("day", buckets, "mail", None, None)
    wait = activity_chart(day, "wait")
    assert wait.title == "Mean queue wait per hour, last day"
    assert wait.desc == (
        "5 attempts started in the last day, waiting 19.2 s on average between scheduled and "
        "started; the longest hour, 17:00 UTC, had 1.5 min."
    )
    assert [b.label for b in wait.bars] == [
        "15:00 UTC: 1.5 s mean wait",
        "17:00 UTC: 1.5 min mean wait",
    ]
    assert [t.text for t in wait.ticks] == ["0", "2.0 min", "24 h ago", "12 h ago", "now"]
    assert activity_chart(day, "completed").desc.endswith("had 10.")
    assert [wait_text(v) for v in (0, 999, 1000, 59_999, 60_000)] == [
        "0 ms", "999 ms", "1.0 s", "60.0 s", "1.0 min",
    ]  # fmt: skip
    assert [nice_wait_ceiling(v) for v in (0, 700, 1001, 90_000)] == [1, 1000, 2000, 120_000]
    assert [window_of(v) for v in (None, "day", "hour", "week")] == ["hour", "day", "hour", "hour"]
