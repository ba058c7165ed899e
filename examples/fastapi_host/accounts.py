"""The demo's user store. A real host would use its own users table and password hashing."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: str  # "operator" (view and act), "viewer" (view only), "guest" (no access)


def _hash(password: str) -> str:
    return hashlib.sha256(f"oban-powertools-demo:{password}".encode()).hexdigest()


USERS: dict[str, tuple[User, str]] = {
    "ops-demo": (User("ops-demo", "Ops Demo", "operator"), _hash("demo")),
    "ops-viewer": (User("ops-viewer", "Ops Viewer", "viewer"), _hash("demo")),
    "ops-guest": (User("ops-guest", "Ops Guest", "guest"), _hash("demo")),
}


def authenticate(username: str, password: str) -> User | None:
    entry = USERS.get(username)
    if entry is None:
        return None
    user, digest = entry
    return user if hmac.compare_digest(digest, _hash(password)) else None


def find(username: str | None) -> User | None:
    entry = USERS.get(username or "")
    return entry[0] if entry else None
