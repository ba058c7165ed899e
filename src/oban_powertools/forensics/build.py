"""Which bundle a subject gets: the one entry point pages and exports call."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..config import DEFAULT_LIFELINE_GRACE_SECONDS
from ..db import Database
from ..display import Display
from ..read_models.common import now_utc
from .bundle import EvidenceBundle
from .cron_entry import cron_bundle
from .job import job_bundle
from .queue import queue_bundle
from .workflow import workflow_bundle

SUBJECT_TYPES = ("cron_entry", "job", "queue", "workflow")
DEFAULT_WINDOW = timedelta(hours=24)


class UnsupportedSubject(ValueError):
    """Forensics has no bundle for this kind of subject (yet)."""


async def build_bundle(
    db: Database,
    display: Display,
    resource_type: str,
    resource_id: str,
    *,
    bridge: bool = False,
    now: datetime | None = None,
    window: timedelta = DEFAULT_WINDOW,
    lifeline_grace: float = DEFAULT_LIFELINE_GRACE_SECONDS,
) -> EvidenceBundle:
    """The evidence bundle for one subject. ``display`` should be on the forensics surface;
    ``lifeline_grace`` is the host's ``Config.lifeline_grace_seconds`` (when an executing
    job counts as orphaned)."""
    now = now or now_utc()
    if resource_type == "cron_entry":
        return await cron_bundle(db, display, resource_id, bridge=bridge, now=now, window=window)
    if resource_type == "job":
        return await job_bundle(
            db,
            display,
            resource_id,
            bridge=bridge,
            now=now,
            window=window,
            lifeline_grace=lifeline_grace,
        )
    if resource_type == "queue":
        return await queue_bundle(db, display, resource_id, bridge=bridge, now=now, window=window)
    if resource_type == "workflow":
        return await workflow_bundle(
            db, display, resource_id, bridge=bridge, now=now, window=window
        )
    raise UnsupportedSubject(
        f"forensics covers {', '.join(SUBJECT_TYPES)}; {resource_type[:40]!r} is not one of them"
    )
