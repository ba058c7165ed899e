"""Queue limit actions: ``set_queue_limits`` changes a queue's global limit and rate limit.

The numbers an operator sets are stored in ``powertools_queue_limits`` as a decision that
nodes keep across restarts and deploys (a node's declaration at start changes only the
partition and the ``declared`` options then); ``revert`` clears the decision, so the
numbers are the code's declaration again. The partition is not adjustable: it follows
the code, because the jobs already enqueued are keyed by it. The limited fetch reads the
row at every fetch, so no signal is needed: every node applies the change at its next
fetch. The confirm is one statement (``confirm_set_limits``), like a cron pause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import Conn
from ..limits import decision
from ..limits.decision import limits_snapshot
from ..limits.options import MAX_PERIOD, Partition, parse_queue_limits
from ..limits.usage import limit_use
from ..queues.state import QUEUE_PATTERN
from .base import (
    ApplyContext,
    ConfirmStatement,
    NamedAction,
    Params,
    Snapshot,
    Snapshots,
    register,
    whole_number,
)
from .errors import InvalidParams

# The most jobs a limit may allow: far above any real queue, low enough to stay an int4.
MAX_ALLOWED = 1_000_000
NUMBERS = ("global_limit", "rate_allowed", "rate_period")
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Numbers:
    """A queue's adjustable limits: the global limit and the rate (both or neither)."""

    global_limit: int | None
    rate_allowed: int | None
    rate_period: int | None

    @classmethod
    def of(cls, snap: Snapshot) -> Numbers:
        return cls(snap["global_limit"], snap["rate_allowed"], snap["rate_period"])

    @classmethod
    def declared(cls, snap: Snapshot) -> Numbers:
        """The numbers the queue's code declares (none when no node declared any)."""
        limits = parse_queue_limits(snap["queue"], snap["declared"] or {})
        g, r = limits.global_limit, limits.rate_limit
        return cls(g.allowed if g else None, r.allowed if r else None, r.period if r else None)


def _optional(raw: Mapping[str, Any], name: str, most: int, unit: str = "") -> int | None:
    """A number that may be left out (None, or an empty form field): no such limit."""
    value = raw.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidParams(f"{name} must be a whole number{unit}")
    return whole_number(raw, name, most, unit)


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise InvalidParams(f"{name} must be true or false")


def target_numbers(snap: Snapshot, params: Params) -> Numbers:
    """What the queue's limits become: the parameters, or the declaration on revert."""
    if params.get("revert"):
        return Numbers.declared(snap)
    return Numbers(
        params.get("global_limit"), params.get("rate_allowed"), params.get("rate_period")
    )


@register
class SetQueueLimits(NamedAction):
    name = "set_queue_limits"
    event = "queue.limits_changed"
    resource_type = "queue"
    label = "Change limits"
    destructive = True
    target_pattern = QUEUE_PATTERN
    target_noun = "queue name"

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The queue's limits as they should be: ``global_limit`` (at most N executing
        across all nodes) and ``rate_allowed`` with ``rate_period`` (at most N starts in any
        period seconds); one left out means no such limit. Or ``revert``: the code's
        declaration again, and no other parameter."""
        self.refuse_unknown(raw, frozenset({*NUMBERS, "revert"}))
        if _flag(raw, "revert"):
            given = [n for n in NUMBERS if _optional_given(raw, n)]
            if given:
                raise InvalidParams(
                    f"revert returns to the code's declaration and takes no numbers "
                    f"(got {', '.join(given)})"
                )
            return {"revert": True}
        numbers = {
            "global_limit": _optional(raw, "global_limit", MAX_ALLOWED),
            "rate_allowed": _optional(raw, "rate_allowed", MAX_ALLOWED),
            "rate_period": _optional(raw, "rate_period", MAX_PERIOD, " of seconds"),
        }
        if (numbers["rate_allowed"] is None) != (numbers["rate_period"] is None):
            raise InvalidParams(
                "rate_allowed and rate_period go together: give both (at most rate_allowed "
                "starts in any rate_period seconds), or neither for no rate limit"
            )
        return numbers

    async def snapshot(
        self, conn: Conn, targets: Sequence[str], *, lock: bool
    ) -> dict[str, Snapshot]:
        # The confirm statement locks the row itself; the snapshot is the preview's.
        snaps = await limits_snapshot(conn, targets)
        for queue, snap in snaps.items():
            use = (await limit_use(conn, queue)).get(queue)
            snap["use"] = {
                "running": snap["running"],
                "started": use.started if use else 0,
                "partitions_at_global": use.partitions_at_global if use else 0,
                "partitions_at_rate": use.partitions_at_rate if use else 0,
                "window_resets_at": _iso(use.window_resets_at if use else None),
            }
        return snaps

    def check(self, snapshot: Snapshot, params: Params) -> str | None:
        if params.get("revert"):
            if snapshot["decided_at"] is None:
                return "the queue's limits already follow the code's declaration"
            return None
        if snapshot["decided_at"] is not None and target_numbers(snapshot, params) == Numbers.of(
            snapshot
        ):
            return "the queue already has these limits"
        return None

    def effect(self, snapshots: Snapshots, params: Params) -> str:
        ((queue, snap),) = snapshots.items()
        return effect_text(queue, snap, target_numbers(snap, params), bool(params.get("revert")))

    def confirm_statement(
        self, ctx: ApplyContext, targets: Sequence[str], params: Params, expected: Snapshots | None
    ) -> ConfirmStatement | None:
        (queue,) = targets
        before = (expected or {}).get(queue)
        # Revert takes the numbers of the declaration the preview saw; were it declared
        # again since, the row's version moved and the confirm drifts.
        numbers = target_numbers(before, params) if before is not None else None
        return ConfirmStatement(
            decision.Q.confirm_set_limits,
            {
                "queue": queue,
                "global_limit": numbers.global_limit if numbers else None,
                "rate_allowed": numbers.rate_allowed if numbers else None,
                "rate_period": numbers.rate_period if numbers else None,
                "revert": bool(params.get("revert")),
                "by_id": ctx.principal.id,
                "by_label": ctx.principal.label,
                "reason": ctx.reason,
            },
        )


def _optional_given(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def partition_of(snap: Snapshot) -> Partition | None:
    fields = snap.get("partition_fields")
    return None if fields is None else Partition(tuple(fields), tuple(snap["partition_keys"]))


# -- the effect in words ----------------------------------------------------------------


def effect_text(queue: str, snap: Snapshot, after: Numbers, revert: bool) -> str:
    """Before → after of each limit, what it means with the queue's use now, and where the
    numbers come from afterwards."""
    before = Numbers.of(snap)
    use = snap["use"]
    partition = partition_of(snap)
    per = f" per partition ({partition.describe()})" if partition else ""
    g_per = per if snap["global_partitioned"] else ""
    r_per = per if snap["rate_partitioned"] else ""
    parts = [
        f"Global limit {_global(before)} → {_global(after)}: "
        + _global_words(after.global_limit, g_per, use, before.global_limit),
        f"Rate limit {_rate(before)} → {_rate(after)}: " + _rate_words(after, r_per, use, before),
    ]
    if partition:
        parts.append(
            f"The partition (per {partition.describe()}) follows the code and does not change"
        )
    if revert:
        by = snap["declared_by"]
        parts.append(
            "The operator's decision is cleared: the numbers are the code's declaration"
            + (f" (declared by node {by})" if by else " (no node declared any)")
            + ", and a node that starts with other numbers in its code sets them"
        )
    else:
        parts.append(
            "Kept as an operator decision across restarts and deploys (a node's own "
            "declaration no longer changes the numbers) until returned to the code's "
            "declaration"
        )
    parts.append(f"Every node applies it to '{queue}' at its next fetch")
    return ". ".join(parts) + "."


def _global(n: Numbers) -> str:
    return str(n.global_limit) if n.global_limit is not None else "none"


def _rate(n: Numbers) -> str:
    if n.rate_allowed is None:
        return "none"
    return f"{n.rate_allowed} per {n.rate_period} s"


def _global_words(allowed: int | None, per: str, use: Mapping[str, Any], old: int | None) -> str:
    running = int(use["running"])
    if allowed is None:
        return f"no limit across nodes (each node's own limit still applies); {running} run now"
    if per:
        at = int(use["partitions_at_global"])
        now = f"{at} partition{'s' if at != 1 else ''} at the current limit" + (
            f" of {old}" if old is not None else ""
        )
        return f"at most {allowed} running{per} across all nodes; {now}"
    if running >= allowed:
        return (
            f"at most {allowed} running across all nodes; {running} run now: no new claims "
            f"until fewer than {allowed}"
        )
    return (
        f"at most {allowed} running across all nodes; {running} run now, so up to "
        f"{allowed - running} more may start"
    )


def _rate_words(after: Numbers, per: str, use: Mapping[str, Any], before: Numbers) -> str:
    if after.rate_allowed is None:
        return "no limit on job starts"
    head = f"at most {after.rate_allowed} starts{per} in any {after.rate_period} s"
    if before.rate_allowed is None:
        return f"{head}; starts are counted from the change on"
    if per:
        spent = int(use["partitions_at_rate"])
        return f"{head}; {spent} partition{'s' if spent != 1 else ''} spent the current allowance"
    started = int(use["started"])
    window = (
        "the current window"
        if before.rate_period == after.rate_period
        else f"the current {before.rate_period} s window"
    )
    text = f"{head}; {started} in {window}"
    if started >= after.rate_allowed:
        resets = use.get("window_resets_at")
        when = f" (the oldest leaves it at {_clock(resets)})" if resets else ""
        text += f": no new starts until the window moves on{when}"
    return text


def _clock(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%H:%M:%S UTC")
