"""The scheduler's telemetry events (docs/telemetry.md), reported once a chunk commits.

A chunk that rolls back (and is decided again) reported nothing, so every
``slot_claimed`` names a slot row and job that exist. ``lag_seconds`` is how long after
its minute a slot was decided: a few tenths of a second for a live slot, minutes or
hours for a late or caught-up one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .. import telemetry
from ..cron.slots import iso_utc
from .chunk import DecidedSlot

__all__ = ["CAUGHT_UP", "EVALUATED", "SLOT_CLAIMED", "SLOT_SKIPPED", "report_chunk"]

SLOT_FIELDS = ("entry", "slot_at", "kind", "outcome", "job_id", "node")
CLAIMED_OUTCOMES = frozenset({"enqueued", "replaced_previous", "released"})

SLOT_CLAIMED = telemetry.declare(
    "oban_powertools.cron.slot_claimed", measurements=("lag_seconds",), metadata=SLOT_FIELDS
)
SLOT_SKIPPED = telemetry.declare(
    "oban_powertools.cron.slot_skipped", measurements=("lag_seconds",), metadata=SLOT_FIELDS
)
CAUGHT_UP = telemetry.declare(
    "oban_powertools.cron.caught_up",
    measurements=("enqueued", "skipped"),
    metadata=("entry", "first_slot_at", "last_slot_at", "node"),
)
EVALUATED = telemetry.declare(
    "oban_powertools.cron.evaluated",
    measurements=("duration", "examined", "enqueued", "skipped", "deferred", "failed"),
    metadata=("minute", "node"),
)


def report_chunk(decided: Sequence[DecidedSlot], node: str, now: datetime) -> None:
    """Emit the events of one committed chunk's slots."""
    catch_up: dict[str, list[DecidedSlot]] = {}
    for slot in decided:
        telemetry.emit(
            SLOT_CLAIMED if slot.outcome in CLAIMED_OUTCOMES else SLOT_SKIPPED,
            {"lag_seconds": (now - slot.slot_at).total_seconds()},
            {
                "entry": slot.entry,
                "slot_at": iso_utc(slot.slot_at),
                "kind": slot.kind,
                "outcome": slot.outcome,
                "job_id": slot.job_id,
                "node": node,
            },
        )
        if slot.kind == "catch_up" or slot.outcome == "skipped_catch_up":
            catch_up.setdefault(slot.entry, []).append(slot)
    for entry, slots in catch_up.items():
        minutes = sorted(slot.slot_at for slot in slots)
        telemetry.emit(
            CAUGHT_UP,
            {
                "enqueued": sum(s.outcome in CLAIMED_OUTCOMES for s in slots),
                "skipped": sum(s.outcome not in CLAIMED_OUTCOMES for s in slots),
            },
            {
                "entry": entry,
                "first_slot_at": iso_utc(minutes[0]),
                "last_slot_at": iso_utc(minutes[-1]),
                "node": node,
            },
        )
