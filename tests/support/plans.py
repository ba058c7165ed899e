"""The plan hash as the docs define it, computed independently of the library."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def documented_plan_hash(action: str, params: dict[str, Any], drift: str) -> str:
    """SHA-256 of the action and parameters as canonical JSON, "|", then the drift text
    ("target:key[:key...]" per target, joined by ",")."""
    plan = json.dumps({"action": action, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{plan}|{drift}".encode()).hexdigest()
