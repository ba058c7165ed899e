"""Pure parts of the overview at a glance: grouping by cause and the chart's geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oban_powertools.read_models.common import Count
from oban_powertools.read_models.failures import NO_ERROR, group_failures
from oban_powertools.read_models.glance import LastHour, Minute
from oban_powertools.read_models.job_failures import FailingWorker
from oban_powertools.web.charts import in_words, minute_chart, nice_ceiling

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


def test_bars_stack_failures_and_scale_to_the_busiest_minute() -> None:
    minutes = [Minute(T0 + timedelta(minutes=i), Count(0), Count(0), Count(0)) for i in range(60)]
    minutes[10] = Minute(T0 + timedelta(minutes=10), Count(50), Count(2), Count(3))
    minutes[20] = Minute(T0 + timedelta(minutes=20), Count(100), Count(0), Count(1))
    hour = LastHour(minutes)
    done = minute_chart(hour, "completed")
    assert [b.height for b in done.bars] == [40.0, 80.0]  # 100 is the axis maximum
    assert done.bars[0].label == "12:10 UTC: 50 completed"
    assert (
        done.desc == "150 jobs completed in the last hour; the busiest minute, 12:20 UTC, had 100."
    )
    failed = minute_chart(hour, "failed")
    discarded, retryable, single = failed.bars
    assert (discarded.css, retryable.css) == ("bar-discarded", "bar-retryable")
    assert discarded.y + 0 == retryable.y + retryable.height  # stacked: retryable on top
    assert single.css == "bar-retryable"
