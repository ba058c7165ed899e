"""The host's users and its login cookie: what the auth seam maps onto.

A real host has a users table and password hashing; the point here is the shape: the
Litestar pages and the control plane read the same signed cookie, so one sign-in serves
both, and the role on the account decides what the operator may do.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from . import settings

COOKIE = "host_session"
MAX_AGE = 8 * 3600  # seconds a sign-in lasts


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: str  # "operator" (view and act), "viewer" (view only), "guest" (no access)


def _digest(text: str) -> str:
    return hmac.new(settings.SESSION_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()


def _password_hash(password: str) -> str:
    return hashlib.sha256(f"litestar-host-demo:{password}".encode()).hexdigest()


USERS: dict[str, tuple[User, str]] = {
    "ops-demo": (User("ops-demo", "Ops Demo", "operator"), _password_hash("demo")),
    "ops-viewer": (User("ops-viewer", "Ops Viewer", "viewer"), _password_hash("demo")),
    "ops-guest": (User("ops-guest", "Ops Guest", "guest"), _password_hash("demo")),
}


def authenticate(username: str, password: str) -> User | None:
    entry = USERS.get(username)
    if entry is None:
        return None
    user, digest = entry
    return user if hmac.compare_digest(digest, _password_hash(password)) else None


def find(username: str) -> User | None:
    entry = USERS.get(username)
    return entry[0] if entry else None


def session_cookie(user: User, *, now: float | None = None) -> str:
    """The cookie value that signs ``user`` in: ``username:issued:signature``."""
    payload = f"{user.username}:{int(now if now is not None else time.time())}"
    return f"{payload}:{_digest(payload)}"


def signed_in(cookie: str | None, *, now: float | None = None) -> User | None:
    """The user a cookie value signs in, or None when it is missing, forged or expired."""
    if not cookie or cookie.count(":") != 2:
        return None
    username, issued, signature = cookie.split(":")
    if not hmac.compare_digest(signature, _digest(f"{username}:{issued}")):
        return None
    if not issued.isdigit() or (now if now is not None else time.time()) - int(issued) > MAX_AGE:
        return None
    return find(username)
