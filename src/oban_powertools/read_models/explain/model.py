"""What the explainer answers: the reasons a job is not executing, each with its evidence
and next paths, as plain data the page, the forensics bundle, the API and the CLI share.

Every string here has already passed the display policy (``explain.gather`` shows each
value once); numbers, ids and times are not the job's data and pass as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..common import NextPath

__all__ = ["Evidence", "Explanation", "Reason", "ReasonCode", "render_text"]

type ReasonCode = Literal[
    "attempts_exhausted",
    "scheduled",
    "due",
    "queue_paused",
    "no_node",
    "no_runtime",
    "local_limit",
    "global_limit",
    "rate_limit",
    "partition_unkeyed",
    "partition_turn",
    "cron_entry_paused",
    "workflow_dependencies",
    "workflow_release_missed",
    "workflow_dependency_failed",
    "chain_waiting",
    "chain_held",
]


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason the job is not executing (``blocking``), or something about its wait an
    operator should know that does not hold it back (a note, e.g. a paused cron entry,
    which stops new runs but not one already enqueued)."""

    code: ReasonCode
    title: str
    evidence: list[Evidence]
    next_paths: list[NextPath]
    blocking: bool = True

    def line(self) -> str:
        """The reason in one line: its title and evidence."""
        facts = "; ".join(f"{e.label}: {e.value}" for e in self.evidence)
        return f"{self.title} ({facts})" if facts else self.title

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "blocking": self.blocking,
            "title": self.title,
            "evidence": [{"label": e.label, "value": e.value} for e in self.evidence],
            "next_paths": [
                {"label": p.label, "ownership": p.ownership, "href": p.href, "note": p.note}
                for p in self.next_paths
            ],
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one job is (not) running, as of ``checked_at`` (the database's clock)."""

    job_id: int
    state: str
    worker: str
    queue: str
    # available, scheduled, retryable or suspended: something decides when it runs
    waiting: bool
    summary: str
    reasons: list[Reason] = field(default_factory=list)
    expected: str | None = None  # when nothing blocks it: when it should start
    checked_at: datetime | None = None

    @property
    def blocking(self) -> list[Reason]:
        return [r for r in self.reasons if r.blocking]

    @property
    def notes(self) -> list[Reason]:
        return [r for r in self.reasons if not r.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "worker": self.worker,
            "queue": self.queue,
            "waiting": self.waiting,
            "summary": self.summary,
            "reasons": [r.to_dict() for r in self.reasons],
            "expected": self.expected,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


def render_text(explanation: Explanation) -> str:
    """The explanation as the CLI prints it: the summary, then each reason numbered with
    its evidence and next paths."""
    lines = [explanation.summary]
    for number, reason in enumerate(explanation.reasons, start=1):
        kind = "" if reason.blocking else " (does not hold it back)"
        lines.append(f"{number}. {reason.title}{kind}")
        lines.extend(f"   {e.label}: {e.value}" for e in reason.evidence)
        for path in reason.next_paths:
            where = f" -> {path.href}" if path.href else ""
            note = f" ({path.note})" if path.note else ""
            lines.append(f"   next [{path.ownership}] {path.label}{where}{note}")
    if explanation.expected:
        lines.append(f"Expected: {explanation.expected}")
    return "\n".join(lines)
