"""Each limited queue's limiters as pages show them: use against the limit, the partition,
where the numbers come from, and whether a limit holds jobs back now.

Read through :func:`oban_powertools.limits.usage.limit_use` (the rows the fetch counts),
so the page shows what the next fetch decides on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import Conn, Database
from ..display import Display
from ..limits.store import load_stored
from ..limits.usage import LimitUse, limit_use
from ..seams import Resource
from .principal import ShownPrincipal, shown_principal


@dataclass(frozen=True, slots=True)
class LimiterView:
    queue: str  # the stored name: the target of actions
    global_use: str | None  # "running 3 / global 10", or partitions at their limit
    rate_use: str | None  # "starts 40 / 100 per 60 s, window resets 12:00:31 UTC"
    partition: str | None  # "per args.customer_id"
    decided: bool
    decided_by: ShownPrincipal | None
    reason: str | None
    decided_at: datetime | None
    declared_by: str | None
    saturated: bool
    held_back: list[str]  # which limits bind now, in words
    # The numbers now, to prefill the change form.
    global_limit: int | None
    rate_allowed: int | None
    rate_period: int | None

    @property
    def source(self) -> str:
        if self.decided:
            by = str(self.decided_by) if self.decided_by else "an unknown actor"
            return f"set by {by}" + (f" — {self.reason}" if self.reason else "")
        if self.declared_by:
            return f"declared by node {self.declared_by}"
        return "declared in code"


def _clock(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S UTC") if value else ""


def limiter_view(display: Display, use: LimitUse) -> LimiterView:
    s = use.stored
    g, r = s.limits.global_limit, s.limits.rate_limit
    resource = Resource("queue", s.queue)
    partition = s.limits.partition
    global_use = rate_use = None
    held: list[str] = []
    if g is not None and g.partition is not None:
        n = use.partitions_at_global
        global_use = (
            f"{n} partition{'s' if n != 1 else ''} at {'their' if n != 1 else 'its'} limit of "
            f"{g.allowed} (running {use.running} in all)"
        )
        if n:
            held.append(f"{n} partition{'s' if n != 1 else ''} at the global limit of {g.allowed}")
    elif g is not None:
        global_use = f"running {use.running} / global {g.allowed}"
        if use.global_full:
            held.append(f"global limit full ({use.running} of {g.allowed} running)")
    if r is not None and r.partition is not None:
        n = use.partitions_at_rate
        rate_use = f"{n} partition{'s' if n != 1 else ''} spent {r.allowed} starts per {r.period} s"
        if n:
            held.append(f"{n} partition{'s' if n != 1 else ''} spent the rate of {r.allowed}")
    elif r is not None:
        rate_use = f"starts {use.started} / {r.allowed} per {r.period} s"
        if use.window_resets_at:
            rate_use += f", window resets {_clock(use.window_resets_at)}"
        if use.rate_spent:
            held.append(
                f"rate spent ({use.started} of {r.allowed} starts in {r.period} s; the window "
                f"resets {_clock(use.window_resets_at)})"
            )
    return LimiterView(
        queue=s.queue,
        global_use=global_use,
        rate_use=rate_use,
        partition=f"per {partition.describe()}" if partition else None,
        decided=s.decided,
        decided_by=shown_principal(
            display,
            s.decided_by_id,
            s.decided_by_label,
            resource=resource,
            id_field="decided_by_id",
            label_field="decided_by_label",
        ),
        reason=display.optional("reason", s.reason, resource=resource, field="reason"),
        decided_at=s.decided_at,
        declared_by=display.optional("node", s.declared_by, resource=resource, field="node"),
        saturated=use.saturated,
        held_back=held,
        global_limit=g.allowed if g else None,
        rate_allowed=r.allowed if r else None,
        rate_period=r.period if r else None,
    )


async def limiters_in(conn: Conn, display: Display) -> dict[str, LimiterView]:
    views = {q: limiter_view(display, use) for q, use in (await limit_use(conn)).items()}
    # An operator who removed every limit decided too: the page shows who, and the way back.
    for queue, stored in (await load_stored(conn)).items():
        if queue not in views and stored.decided:
            views[queue] = limiter_view(display, LimitUse(stored, 0, 0, 0, 0, None))
    return views


async def queue_limiters(db: Database, display: Display) -> dict[str, LimiterView]:
    """Every limited queue's limiters, by queue."""
    async with db.connection() as conn:
        return await limiters_in(conn, display)
