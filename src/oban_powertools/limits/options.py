"""The limiter options a queue declares, with Oban Pro's names so a config moves as is::

    queues={"exports": {"limit": 10,
                        "global_limit": 50,
                        "rate_limit": {"allowed": 100, "period": 60,
                                       "partition": {"fields": ["args"],
                                                     "keys": ["customer_id"]}}}}

``global_limit`` is an int (at most N executing across all nodes) or
``{"allowed": N, "partition": {...}}`` (at most N per partition). ``rate_limit`` is
``{"allowed": N, "period": seconds, "partition": {...}}``: at most N job starts in any
window of ``period`` seconds. A partition groups jobs by ``"worker"``, by the values of
some ``"args"`` keys, or both.

Every problem is a :class:`LimitOptionError` naming the option and the fix; oban calls
the validation (through the ``producer.validate`` hook) when it builds a queue, so a bad
option stops the instance before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LimitOptionError

__all__ = [
    "GlobalLimit",
    "LimitOptionError",
    "Partition",
    "QueueLimits",
    "RateLimit",
    "parse_queue_limits",
]

# oban's own queue options (what reaches the producer besides ours); anything else is a
# typo oban would silently keep.
OBAN_OPTIONS = frozenset({"queue", "limit", "paused"})
LIMIT_OPTIONS = frozenset({"global_limit", "rate_limit"})
PARTITION_FIELDS = ("worker", "args")
MAX_PERIOD = 86_400 * 7


@dataclass(frozen=True, slots=True)
class Partition:
    """How jobs are grouped for a limit: by worker, by args values, or both."""

    fields: tuple[str, ...]
    keys: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {"fields": list(self.fields), "keys": list(self.keys)}

    def describe(self) -> str:
        parts = []
        if "worker" in self.fields:
            parts.append("worker")
        parts.extend(f"args.{key}" for key in self.keys)
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class GlobalLimit:
    allowed: int
    partition: Partition | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    allowed: int
    period: int  # seconds
    partition: Partition | None = None


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limiters; either may be absent."""

    global_limit: GlobalLimit | None = None
    rate_limit: RateLimit | None = None

    @property
    def partition(self) -> Partition | None:
        """The one partition the queue's jobs are keyed by (both limits share it)."""
        for limit in (self.global_limit, self.rate_limit):
            if limit is not None and limit.partition is not None:
                return limit.partition
        return None

    @property
    def empty(self) -> bool:
        return self.global_limit is None and self.rate_limit is None

    def as_options(self) -> dict[str, Any]:
        """The options in their declared shape (JSON-ready), for storing and showing."""
        out: dict[str, Any] = {}
        if self.global_limit is not None:
            g = self.global_limit
            out["global_limit"] = (
                g.allowed
                if g.partition is None
                else {"allowed": g.allowed, "partition": g.partition.as_dict()}
            )
        if self.rate_limit is not None:
            r = self.rate_limit
            rate: dict[str, Any] = {"allowed": r.allowed, "period": r.period}
            if r.partition is not None:
                rate["partition"] = r.partition.as_dict()
            out["rate_limit"] = rate
        return out


def parse_queue_limits(queue: str, options: Mapping[str, Any]) -> QueueLimits:
    """The limiters in one queue's options (oban's own options are passed over)."""
    unknown = sorted(set(options) - OBAN_OPTIONS - LIMIT_OPTIONS)
    if unknown:
        raise LimitOptionError(
            f"queues.{queue}.{unknown[0]}",
            f"is not a queue option (unknown: {', '.join(unknown)})",
            "Queue options are limit, paused, global_limit and rate_limit "
            "(e.g. {'limit': 10, 'global_limit': 50, "
            "'rate_limit': {'allowed': 100, 'period': 60}}).",
        )
    limits = QueueLimits(
        global_limit=_global(queue, options["global_limit"]) if "global_limit" in options else None,
        rate_limit=_rate(queue, options["rate_limit"]) if "rate_limit" in options else None,
    )
    g, r = limits.global_limit, limits.rate_limit
    if g and r and g.partition and r.partition and g.partition != r.partition:
        raise LimitOptionError(
            f"queues.{queue}",
            "global_limit and rate_limit are partitioned differently "
            f"({g.partition.describe()} vs {r.partition.describe()})",
            "Give both the same partition, or partition only one of them.",
        )
    return limits


def _global(queue: str, value: Any) -> GlobalLimit:
    name = f"queues.{queue}.global_limit"
    if isinstance(value, Mapping):
        _only(name, value, {"allowed", "partition"}, "{'allowed': 1, 'partition': {...}}")
        allowed = _positive(f"{name}.allowed", value.get("allowed"))
        return GlobalLimit(allowed, _partition(f"{name}.partition", value.get("partition")))
    return GlobalLimit(_positive(name, value))


def _rate(queue: str, value: Any) -> RateLimit:
    name = f"queues.{queue}.rate_limit"
    if not isinstance(value, Mapping):
        raise LimitOptionError(
            name,
            f"must be a mapping, got {type(value).__name__}",
            "Use {'allowed': 100, 'period': 60} (at most 100 starts in any 60 seconds).",
        )
    _only(name, value, {"allowed", "period", "partition"}, "{'allowed': 100, 'period': 60}")
    allowed = _positive(f"{name}.allowed", value.get("allowed"))
    period = _positive(f"{name}.period", value.get("period"), unit="seconds")
    if period > MAX_PERIOD:
        raise LimitOptionError(
            f"{name}.period",
            f"is {period} seconds, longer than the maximum of {MAX_PERIOD} (one week)",
            "Use a shorter period.",
        )
    return RateLimit(allowed, period, _partition(f"{name}.partition", value.get("partition")))


def _partition(name: str, value: Any) -> Partition | None:
    if value is None:
        return None
    example = "{'fields': ['args'], 'keys': ['customer_id']}"
    if not isinstance(value, Mapping):
        raise LimitOptionError(
            name, f"must be a mapping, got {type(value).__name__}", f"Use {example}."
        )
    _only(name, value, {"fields", "keys"}, example)
    fields = _strings(f"{name}.fields", value.get("fields"), example)
    bad = sorted(set(fields) - set(PARTITION_FIELDS))
    if bad or not fields:
        raise LimitOptionError(
            f"{name}.fields",
            f"must list 'worker' and/or 'args' (got {list(fields)})",
            f"Use {example}, or {{'fields': ['worker']}}.",
        )
    keys = _strings(f"{name}.keys", value.get("keys", []), example)
    if "args" in fields and not keys:
        raise LimitOptionError(
            f"{name}.keys",
            "is empty, but the partition is by args",
            f"Name the args keys to partition by: {example}.",
        )
    if keys and "args" not in fields:
        raise LimitOptionError(
            f"{name}.keys",
            "is given, but 'args' is not among the fields",
            f"Add 'args' to the fields: {example}.",
        )
    if len(set(keys)) != len(keys):
        raise LimitOptionError(
            f"{name}.keys", f"repeats a key ({list(keys)})", "Name each key once."
        )
    ordered = tuple(f for f in PARTITION_FIELDS if f in fields)
    return Partition(ordered, keys)


def _only(name: str, value: Mapping[str, Any], allowed: set[str], example: str) -> None:
    unknown = sorted(str(k) for k in set(value) - allowed)
    if unknown:
        raise LimitOptionError(
            f"{name}.{unknown[0]}",
            f"is not an option here (allowed: {', '.join(sorted(allowed))})",
            f"Use {example}.",
        )


def _positive(name: str, value: Any, *, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        got = "nothing" if value is None else f"{value!r} ({type(value).__name__})"
        raise LimitOptionError(
            name,
            f"must be a positive integer{' of ' + unit if unit else ''}, got {got}",
            "Give a whole number of at least 1.",
        )
    if value < 1:
        raise LimitOptionError(
            name, f"must be at least 1, got {value}", "Give a whole number of at least 1."
        )
    return value


def _strings(name: str, value: Any, example: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise LimitOptionError(name, f"must be a list of strings, got {value!r}", f"Use {example}.")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise LimitOptionError(
                name, f"must hold non-empty strings, got {item!r}", f"Use {example}."
            )
    return items
