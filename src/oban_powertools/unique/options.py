"""The ``unique`` option, with Oban Pro's names and defaults::

    @worker(queue="billing", unique={"period": 300, "fields": ["worker", "args"],
                                     "keys": ["account_id"], "states": "incomplete"})

or per insert: ``Worker.new(args, unique={...})`` (which overrides the worker's).

``fields``
    what the key is made of: any of ``worker``, ``queue``, ``args``, ``meta``
    (default ``worker``, ``queue``, ``args``);
``keys``
    only these keys of ``args`` and ``meta`` count (default: all of them);
``period``
    seconds during which a job blocks its duplicates, counted from its insertion, or
    ``"infinity"`` / ``None`` for as long as it stays in the unique states (default 60);
``states``
    the states in which a job blocks its duplicates: a group (``"successful"``, the
    default; ``"incomplete"``, ``"scheduled"``, ``"all"``) or a list of states;
``replace``
    on a conflict, update these fields of the existing job instead of nothing: a list of
    ``args``, ``max_attempts``, ``meta``, ``priority``, ``scheduled_at``, ``tags``
    (applied when the existing job is available, scheduled, retryable or suspended), or
    a mapping from state to such a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UniqueOptionError

__all__ = ["STATE_GROUPS", "UniqueSpec", "parse_unique"]

ALL_STATES = (
    "available",
    "scheduled",
    "executing",
    "retryable",
    "suspended",
    "completed",
    "cancelled",
    "discarded",
)
INCOMPLETE = ("available", "scheduled", "executing", "retryable", "suspended")
STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ALL_STATES,
    "incomplete": INCOMPLETE,
    "scheduled": ("scheduled",),
    "successful": (*INCOMPLETE, "completed"),
}
FIELDS = ("worker", "queue", "args", "meta")
REPLACEABLE = ("args", "max_attempts", "meta", "priority", "scheduled_at", "tags")
# A list-form ``replace`` never rewrites a job that is running or finished.
REPLACE_STATES = ("available", "scheduled", "retryable", "suspended")
OPTIONS = ("fields", "keys", "period", "states", "replace")
DEFAULT_PERIOD = 60
DEFAULT_FIELDS = ("worker", "queue", "args")


@dataclass(frozen=True, slots=True)
class UniqueSpec:
    fields: tuple[str, ...] = DEFAULT_FIELDS
    keys: tuple[str, ...] | None = None  # None: every key
    period: int | None = DEFAULT_PERIOD  # None: infinity
    states: tuple[str, ...] = STATE_GROUPS["successful"]
    replace: Mapping[str, tuple[str, ...]] | None = None  # state -> fields

    def describe(self) -> dict[str, Any]:
        """JSON-ready, as stored in the job's ``meta.unique`` and shown on its page."""
        out: dict[str, Any] = {
            "fields": list(self.fields),
            "keys": None if self.keys is None else list(self.keys),
            "period": self.period,
            "states": list(self.states),
        }
        if self.replace:
            out["replace"] = {state: list(f) for state, f in self.replace.items()}
        return out


def parse_unique(value: Any, *, where: str = "unique") -> UniqueSpec | None:
    """The spec in a ``unique`` option (``None``/``False``: not unique; ``True``: the
    defaults)."""
    if value is None or value is False:
        return None
    if value is True:
        return UniqueSpec()
    if isinstance(value, UniqueSpec):
        return value
    if not isinstance(value, Mapping):
        raise UniqueOptionError(
            f"{where}: must be a mapping such as {{'period': 300, 'keys': ['account_id']}}, "
            f"got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in set(value) - set(OPTIONS))
    if unknown:
        raise UniqueOptionError(
            f"{where}.{unknown[0]}: not a unique option (allowed: {', '.join(OPTIONS)})"
        )
    fields = _names(f"{where}.fields", value.get("fields", DEFAULT_FIELDS), FIELDS)
    if not fields:
        raise UniqueOptionError(f"{where}.fields: name at least one of {', '.join(FIELDS)}")
    keys_value = value.get("keys")
    keys = None if keys_value is None else _strings(f"{where}.keys", keys_value)
    if keys is not None and not ({"args", "meta"} & set(fields)):
        raise UniqueOptionError(
            f"{where}.keys: only args and meta have keys; add 'args' or 'meta' to fields"
        )
    return UniqueSpec(
        fields=tuple(f for f in FIELDS if f in fields),
        keys=keys,
        period=_period(f"{where}.period", value.get("period", DEFAULT_PERIOD)),
        states=_states(f"{where}.states", value.get("states", "successful")),
        replace=_replace(f"{where}.replace", value.get("replace")),
    )


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise UniqueOptionError(f"{where}: must be a list of strings, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item:
            raise UniqueOptionError(f"{where}: must hold non-empty strings, got {item!r}")
    if len(set(value)) != len(value):
        raise UniqueOptionError(f"{where}: names something twice ({list(value)})")
    return tuple(value)


def _names(where: str, value: Any, allowed: Sequence[str]) -> tuple[str, ...]:
    names = _strings(where, value)
    bad = [n for n in names if n not in allowed]
    if bad:
        raise UniqueOptionError(f"{where}: {bad[0]!r} is not one of {', '.join(allowed)}")
    return names


def _period(where: str, value: Any) -> int | None:
    if value is None or value == "infinity":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UniqueOptionError(
            f"{where}: must be a whole number of seconds or 'infinity', got {value!r}"
        )
    if value < 1:
        raise UniqueOptionError(f"{where}: must be at least 1 second, got {value}")
    return value


def _states(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        if value not in STATE_GROUPS:
            raise UniqueOptionError(
                f"{where}: {value!r} is not a state group ({', '.join(STATE_GROUPS)}); "
                "or give a list of states"
            )
        return STATE_GROUPS[value]
    states = _names(where, value, ALL_STATES)
    if not states:
        raise UniqueOptionError(f"{where}: name at least one state")
    return tuple(s for s in ALL_STATES if s in states)


def _replace(where: str, value: Any) -> Mapping[str, tuple[str, ...]] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        out: dict[str, tuple[str, ...]] = {}
        for state, fields in value.items():
            if state not in ALL_STATES:
                raise UniqueOptionError(f"{where}: {state!r} is not a job state")
            out[str(state)] = _names(f"{where}.{state}", fields, REPLACEABLE)
        return out
    fields = _names(where, value, REPLACEABLE)
    return {state: fields for state in REPLACE_STATES}
