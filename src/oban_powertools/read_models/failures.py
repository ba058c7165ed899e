"""Failing workers grouped by cause, so one broken dependency is one overview item.

Twenty workers that time out against the same upstream are one problem with one fix, not
twenty identical "critical" cards. Workers are grouped by the error class and message of
their latest failure (the traceback's last line, as the display policy shows it: values
the policy masks do not split a group), and each group keeps its workers and counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .job_failures import FailingWorker

NO_ERROR = "no error recorded"


@dataclass(frozen=True, slots=True)
class FailureGroup:
    cause: str  # error class and message, e.g. "TimeoutError: upstream timed out after 30s"
    workers: list[FailingWorker]  # most recent failure first

    @property
    def retryable(self) -> int:
        return sum(w.retryable for w in self.workers)

    @property
    def discarded(self) -> int:
        return sum(w.discarded for w in self.workers)

    @property
    def sampled(self) -> bool:
        return any(w.sampled for w in self.workers)

    @property
    def latest(self) -> FailingWorker:
        return self.workers[0]

    @property
    def last_failed_at(self) -> datetime | None:
        return self.latest.last_failed_at

    @property
    def error_class(self) -> str:
        """The exception's name when the line starts with one ("TimeoutError: ...")."""
        head, sep, _ = self.cause.partition(":")
        name = head.rsplit(".", 1)[-1]
        return name if sep and name.isidentifier() else ""


def _recency(worker: FailingWorker) -> float:
    return worker.last_failed_at.timestamp() if worker.last_failed_at else float("-inf")


def group_failures(workers: list[FailingWorker]) -> list[FailureGroup]:
    """One group per distinct cause, the most recently failing group first."""
    by_cause: dict[str, list[FailingWorker]] = {}
    for worker in workers:
        by_cause.setdefault(" ".join(worker.last_error.split()) or NO_ERROR, []).append(worker)
    groups = [
        FailureGroup(cause, sorted(members, key=_recency, reverse=True))
        for cause, members in by_cause.items()
    ]
    groups.sort(key=lambda g: _recency(g.latest), reverse=True)
    return groups
