"""The ``chain`` insert option.

::

    Sync.new({"account": 42}, chain="account:42")
    Sync.new({"account": 42}, chain={"key": "account:42", "on_failure": "skip"})
    Sync.new({"account": 42}, chain=chained("account:42", on_failure="skip"))

``key``
    the chain: every job given the same key runs after the ones inserted before it with
    that key has finished (a non-empty string of at most 255 characters);
``on_failure``
    what this link's failure (discarded, or cancelled) does to the chain: ``"hold"``
    (the default: the next link waits until an operator resumes the chain) or
    ``"skip"`` (the next link runs anyway). A retryable link is not a failure: the
    chain waits for its next attempt.

oban puts an option it does not know into ``job.extra``, so the option travels to
Powertools' insert hook there; the hook writes the job's meta (``chain``,
``chain_seq``: set once, never changed, read by the ack path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ChainError

__all__ = ["CHAIN_KEY", "EXTRA_KEY", "ON_FAILURE", "SEQ_KEY", "ChainSpec", "chained", "parse_chain"]

# A link's meta: its chain's key and its position (immutable).
CHAIN_KEY = "chain"
SEQ_KEY = "chain_seq"
# A link's extra (not stored): the option as given, for the insert hook.
EXTRA_KEY = "chain"

type OnFailure = Literal["hold", "skip"]
ON_FAILURE: tuple[OnFailure, ...] = ("hold", "skip")
MAX_KEY = 255


@dataclass(frozen=True, slots=True)
class ChainSpec:
    key: str
    on_failure: OnFailure = "hold"


def chained(key: str, *, on_failure: OnFailure = "hold") -> ChainSpec:
    """The ``chain=`` option for a link of chain ``key`` (validated now)."""
    spec = parse_chain({"key": key, "on_failure": on_failure})
    assert spec is not None
    return spec


def _key(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ChainError(
            f"{where}: a chain key must be a non-empty string such as 'account:42', got {value!r}"
        )
    if not value.isprintable():
        raise ChainError(f"{where}: a chain key must be printable text, got {value!r}")
    if len(value) > MAX_KEY:
        raise ChainError(f"{where}: a chain key has at most {MAX_KEY} characters, got {len(value)}")
    return value


def parse_chain(value: Any, *, where: str = "chain") -> ChainSpec | None:
    """The spec in a ``chain`` option (None: not a chain link)."""
    if value is None:
        return None
    if isinstance(value, ChainSpec):
        return value
    if isinstance(value, str):
        return ChainSpec(_key(value, where))
    if not isinstance(value, Mapping):
        raise ChainError(
            f"{where}: must be a chain key or a mapping such as "
            f"{{'key': 'account:42', 'on_failure': 'skip'}}, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in set(value) - {"key", "on_failure"})
    if unknown:
        raise ChainError(f"{where}.{unknown[0]}: not a chain option (allowed: key, on_failure)")
    on_failure = value.get("on_failure", "hold")
    if on_failure not in ON_FAILURE:
        raise ChainError(
            f"{where}.on_failure: must be 'hold' (the next link waits for an operator) or "
            f"'skip' (the next link runs anyway), got {on_failure!r}"
        )
    return ChainSpec(_key(value.get("key"), f"{where}.key"), on_failure)
