"""Completeness rules of evidence bundles, and coverage gaps (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from oban_powertools.forensics.completeness import (
    COMPLETE,
    LABELS,
    PARTIAL,
    UNAVAILABLE,
    UNKNOWN,
    Gap,
    coverage_gaps,
    cron_completeness,
    job_completeness,
    queue_completeness,
)

T0 = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def test_the_rules_speak_the_contract_words_and_no_others() -> None:
    # The product contract's completeness vocabulary, word for word: a rule that returned
    # another spelling (or a label the pages do not know) would break the wording contract.
    produced = {
        queue_completeness(known=known, live_nodes=live, stale_nodes=stale).label
        for known in (False, True)
        for live in (0, 2)
        for stale in (0, 1)
    } | {
        job_completeness(exists=exists, has_audit=audit, state="completed", attempt=2).label
        for exists in (False, True)
        for audit in (False, True)
    }
    assert produced == {"complete", "partial evidence", "history unavailable", "unknown"}
    assert produced == set(LABELS)


def test_full_coverage_has_no_gap() -> None:
    assert coverage_gaps(T0, T0 + minutes(60), [(T0, T0 + minutes(60))]) == []


def test_overlapping_and_touching_spans_merge() -> None:
    spans = [
        (T0, T0 + minutes(20)),
        (T0 + minutes(21), T0 + minutes(40)),
        (T0 + minutes(30), T0 + minutes(60)),
    ]
    assert coverage_gaps(T0, T0 + minutes(60), spans) == []


def test_gaps_at_start_middle_and_end() -> None:
    spans = [(T0 + minutes(5), T0 + minutes(20)), (T0 + minutes(30), T0 + minutes(40))]
    gaps = coverage_gaps(T0, T0 + minutes(60), spans)
    assert gaps == [
        Gap(T0, T0 + minutes(4)),
        Gap(T0 + minutes(21), T0 + minutes(29)),
        Gap(T0 + minutes(41), T0 + minutes(58)),  # the last 2 minutes are not due yet
    ]
    assert [g.minutes for g in gaps] == [5, 9, 18]


def test_the_tail_within_tolerance_is_not_a_gap() -> None:
    assert coverage_gaps(T0, T0 + minutes(60), [(T0, T0 + minutes(58))]) == []
    assert coverage_gaps(T0, T0 + minutes(60), [(T0, T0 + minutes(57))]) == [
        Gap(T0 + minutes(58), T0 + minutes(58))
    ]


def test_spans_outside_the_window_are_ignored() -> None:
    spans = [(T0 - minutes(90), T0 - minutes(30)), (T0 + minutes(100), T0 + minutes(200))]
    assert coverage_gaps(T0, T0 + minutes(10), spans) == [Gap(T0, T0 + minutes(8))]


def test_cron_rules() -> None:
    def label(**kw: object) -> str:
        base: dict[str, object] = {
            "exists": True,
            "has_audit": False,
            "spans": 3,
            "gaps": [],
            "referenced_jobs": 2,
            "missing_jobs": 0,
        }
        base.update(kw)
        return cron_completeness(**base).label  # type: ignore[arg-type]

    assert label() == COMPLETE
    assert label(gaps=[Gap(T0, T0)]) == PARTIAL
    assert label(missing_jobs=1) == PARTIAL
    assert label(truncated=True) == PARTIAL
    assert label(missing_jobs=2) == UNAVAILABLE  # every slot's job pruned
    assert label(spans=0) == UNAVAILABLE  # no coverage at all
    assert label(exists=False, has_audit=True) == UNAVAILABLE
    assert label(exists=False, has_audit=False) == UNKNOWN
    reasons = cron_completeness(
        exists=True,
        has_audit=True,
        spans=1,
        gaps=[Gap(T0, T0 + minutes(2))],
        referenced_jobs=0,
        missing_jobs=0,
    ).reasons
    assert reasons == [
        "1 coverage gap(s), 3 minute(s) in all, where no leader evaluated the schedule"
    ]


def test_job_rules() -> None:
    assert job_completeness(exists=False, has_audit=False).label == UNKNOWN
    assert job_completeness(exists=False, has_audit=True).label == UNAVAILABLE
    ok = job_completeness(
        exists=True, has_audit=False, state="retryable", attempt=2, errors_recorded=2
    )
    assert ok.label == COMPLETE and not ok.bounded
    running = job_completeness(
        exists=True, has_audit=False, state="executing", attempt=3, errors_recorded=2
    )
    assert running.label == COMPLETE
    missing = job_completeness(
        exists=True, has_audit=False, state="completed", attempt=3, errors_recorded=1
    )
    assert missing.label == PARTIAL and missing.bounded
    rescued = job_completeness(
        exists=True, has_audit=False, state="available", attempt=1, rescued=1
    )
    assert rescued.label == PARTIAL
    assert "rescued" in rescued.reasons[0]


def test_queue_rules() -> None:
    assert queue_completeness(known=False, live_nodes=0, stale_nodes=0).label == UNKNOWN
    assert queue_completeness(known=True, live_nodes=0, stale_nodes=0).label == UNAVAILABLE
    assert queue_completeness(known=True, live_nodes=2, stale_nodes=1).label == PARTIAL
    assert queue_completeness(known=True, live_nodes=2, stale_nodes=0).label == COMPLETE
