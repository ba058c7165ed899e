"""The evidence bundle: the model every subject's bundle fills, and what they share.

A bundle answers, for an operator arriving from the overview or an alert: what is going
on (diagnosis), what happened in order (chronology merging the audit trail, cron slots,
scheduler coverage gaps and job history), how sure that picture is (completeness), and
where to go next and who owns that venue (next paths). Every value passes the display
policy on the ``forensics`` surface; :meth:`EvidenceBundle.to_dict` is the export. Each
subject (``cron_entry.py``, ``job.py``, ``queue.py``) gathers its evidence and builds its
bundle through :class:`Subject`, so the fields they share are filled in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from ..audit import queries as audit_queries
from ..db import Conn
from ..display import Display
from ..read_models.audit import AuditRow, audit_row
from ..read_models.common import NATIVE, NextPath, utc
from ..read_models.principal import ShownPrincipal
from ..seams import Resource
from .completeness import Completeness

AUDIT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ChronologyItem:
    at: datetime | None
    source: str  # "audit", "cron slot", "scheduler", "job"
    title: str
    detail: str = ""
    actor: ShownPrincipal | None = None  # id beside label, already displayed
    href: str | None = None  # relative to the mount


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    resource_type: str
    resource_id: str
    subject: str  # display-policy label of the subject
    exists: bool
    state: str  # a one-word summary: paused, active, failing, retryable, running ...
    diagnosis: str
    details: list[str]
    facts: list[Fact]
    chronology: list[ChronologyItem]
    completeness: Completeness
    next_paths: list[NextPath]
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    audit: list[AuditRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The bundle as JSON-ready data (the export); values are already displayed."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "subject": {
                "resource_type": self.resource_type,
                "resource_id": self.subject,
                "exists": self.exists,
                "state": self.state,
            },
            "diagnosis": {"summary": self.diagnosis, "details": self.details},
            "facts": {f.label: f.value for f in self.facts},
            "completeness": {
                "label": self.completeness.label,
                "reasons": self.completeness.reasons,
            },
            "window": {"start": iso(self.window_start), "end": iso(self.window_end)},
            "chronology": [
                {
                    "at": iso(item.at),
                    "source": item.source,
                    "title": item.title,
                    "detail": item.detail,
                    "actor": item.actor.to_dict() if item.actor else None,
                    "href": item.href,
                }
                for item in self.chronology
            ],
            "next_paths": [
                {"label": p.label, "ownership": p.ownership, "href": p.href, "note": p.note}
                for p in self.next_paths
            ],
            "generated_at": iso(self.generated_at),
        }


@dataclass(frozen=True, slots=True)
class Subject:
    """One subject's identity, audit trail and moment: what every bundle of it shares."""

    resource_type: str
    resource_id: str
    label: str  # display-policy label of the subject
    audit: list[AuditRow]
    now: datetime
    audit_truncated: bool = False  # there are older audit rows than ``audit`` holds

    def audit_items(self) -> list[ChronologyItem]:
        return audit_items(self.audit)

    def audit_path(self) -> NextPath:
        return audit_path(self.resource_type, self.resource_id)

    def bundle(
        self,
        *,
        state: str,
        diagnosis: str,
        details: list[str],
        facts: list[Fact],
        items: list[ChronologyItem],
        completeness: Completeness,
        next_paths: list[NextPath],
        window_start: datetime,
        exists: bool = True,
    ) -> EvidenceBundle:
        """The bundle of this subject; the chronology is sorted newest first here."""
        return EvidenceBundle(
            resource_type=self.resource_type,
            resource_id=self.resource_id,
            subject=self.label,
            exists=exists,
            state=state,
            diagnosis=diagnosis,
            details=details,
            facts=facts,
            chronology=newest_first(items),
            completeness=completeness,
            next_paths=next_paths,
            window_start=window_start,
            window_end=self.now,
            generated_at=self.now,
            audit=self.audit,
        )

    def missing(
        self,
        *,
        diagnosis: str,
        completeness: Completeness,
        index: NextPath,
        window_start: datetime,
        exists: bool = False,
        audit_note: bool = True,
    ) -> EvidenceBundle:
        """The bundle of a subject that is not there (any more): its audit trail, and the
        way to its audit page and to the list of its kind (``index``). With ``audit_note``
        the diagnosis says when that trail is shown below."""
        if audit_note and self.audit:
            diagnosis += " Its audit trail is shown below."
        return self.bundle(
            state="missing",
            diagnosis=diagnosis,
            details=[],
            facts=[],
            items=self.audit_items(),
            completeness=completeness,
            next_paths=[self.audit_path(), index],
            window_start=window_start,
            exists=exists,
        )


def with_query(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"


def audit_path(resource_type: str, resource_id: str) -> NextPath:
    return NextPath(
        "Audit trail for this subject",
        NATIVE,
        with_query("/audit", resource_type=resource_type, resource_id=resource_id),
    )


def newest_first(items: list[ChronologyItem]) -> list[ChronologyItem]:
    """Newest first; items without a time (unknown) go last."""
    dated = [i for i in items if i.at is not None]
    dated.sort(key=_at, reverse=True)
    return dated + [i for i in items if i.at is None]


def _at(item: ChronologyItem) -> datetime:
    assert item.at is not None
    return item.at


def audit_items(rows: Sequence[AuditRow]) -> list[ChronologyItem]:
    items = []
    for row in rows:
        detail = f"Reason: '{row.reason}'." if row.reason else "No reason given."
        if row.outcome != "succeeded":
            detail = f"Outcome: {row.outcome}. " + detail
        items.append(
            ChronologyItem(
                at=utc(row.occurred_at),
                source="audit",
                title=f"{row.action} via {row.surface}",
                detail=detail,
                actor=row.actor,
                href=f"/audit/{row.id}",
            )
        )
    return items


async def open_subject(
    conn: Conn,
    display: Display,
    resource_type: str,
    resource_id: str,
    *,
    field: str,
    now: datetime,
) -> Subject:
    """The subject labelled by the display policy (``field`` names its id), with its
    latest audit trail: how every bundle starts."""
    resource = Resource(resource_type, resource_id)
    label = display.text(resource_type, resource_id, resource=resource, field=field)
    rows, truncated = await audit_trail(conn, display, resource_type, resource_id)
    return Subject(resource_type, resource_id, label, rows, now, truncated)


async def audit_trail(
    conn: Conn, display: Display, resource_type: str, resource_id: str
) -> tuple[list[AuditRow], bool]:
    """The subject's latest audit rows, and whether there are older ones than shown."""
    page = await audit_queries.events_for(conn, resource_type, resource_id, limit=AUDIT_LIMIT)
    rows = [audit_row(display, e, full=False) for e in page.events]
    return rows, page.next_before is not None
