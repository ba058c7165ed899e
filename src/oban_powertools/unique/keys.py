"""The key a unique job is unique by: a hash of the chosen fields, the same in every
process that computes it (canonical JSON: sorted keys, no spaces)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..telemetry import TRACE_CONTEXT_META
from .options import UniqueSpec

__all__ = ["OWN_META", "unique_key"]

# What Powertools itself keeps in a job's meta; never part of a key (the trace context
# differs for every enqueue of the same job).
OWN_META = frozenset({"unique", "unique_key", "partition_key", TRACE_CONTEXT_META})


def _pick(values: Mapping[str, Any], keys: tuple[str, ...] | None) -> dict[str, Any]:
    if keys is None:
        return dict(values)
    # A key a job does not have counts as absent, not as null: {"a": 1} and
    # {"a": 1, "b": None} differ when keys includes "b".
    return {k: values[k] for k in keys if k in values}


def unique_key(
    spec: UniqueSpec,
    *,
    worker: str,
    queue: str,
    args: Mapping[str, Any],
    meta: Mapping[str, Any],
) -> str:
    parts: dict[str, Any] = {}
    if "worker" in spec.fields:
        parts["worker"] = worker
    if "queue" in spec.fields:
        parts["queue"] = queue
    if "args" in spec.fields:
        parts["args"] = _pick(args, spec.keys)
    if "meta" in spec.fields:
        own = {k: v for k, v in meta.items() if k not in OWN_META}
        parts["meta"] = _pick(own, spec.keys)
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
