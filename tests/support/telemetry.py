"""Recording Powertools' telemetry events in tests, checked against their declarations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from oban import telemetry as oban_telemetry

from oban_powertools.telemetry import Event


class Recorded:
    """What handlers attached to ``events`` received, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def of(self, event: Event) -> list[dict[str, Any]]:
        """The payloads of ``event``; each holds exactly the declared fields."""
        found = [meta for name, meta in self.events if name == event.name]
        for meta in found:
            assert set(meta) == event.fields, (event.name, sorted(meta))
        return found


@contextmanager
def recording(*events: Event) -> Iterator[Recorded]:
    recorded = Recorded()
    handler_id = f"test-{uuid.uuid4().hex}"
    oban_telemetry.attach(
        handler_id,
        [e.name for e in events],
        lambda name, meta: recorded.events.append((name, meta)),
    )
    try:
        yield recorded
    finally:
        oban_telemetry.detach(handler_id)
