"""Security for every response and every state-changing request.

* Headers: a strict Content-Security-Policy (no inline script or style anywhere in the
  templates), nosniff, no framing, same-origin referrers, no caching of operator data.
* CSRF: a session-independent signed token (HMAC over the actor's principal id and an
  issue time) that every form carries, plus a same-origin check of Origin/Referer on POST.
  The token works whatever session mechanism the host uses, and a token minted for one
  operator is useless to another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CSRF_MAX_AGE = 12 * 3600


class SecurityHeaders:
    """Pure ASGI middleware: sets the security headers on every HTTP response.

    Upstream values (e.g. a bridged page's own CSP) are replaced, never merged, so nothing
    served below the mount is framed or runs inline script.
    """

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path: str = scope.get("path", "")
        local = path[len(root) :] if root and path.startswith(root) else path
        static = local.startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Csrf:
    """Signed, actor-bound, expiring tokens; no server-side state."""

    def __init__(self, secret: str | bytes | None, *, max_age: int = CSRF_MAX_AGE) -> None:
        if secret is None:
            # A random per-process secret: tokens stop verifying on restart (forms reload),
            # which is safe; multi-process hosts should set config.extra["csrf_secret"].
            secret = secrets.token_bytes(32)
        self._key = secret.encode() if isinstance(secret, str) else secret
        self.max_age = max_age

    def _sign(self, principal_id: str, issued: int) -> str:
        mac = hmac.new(self._key, f"{issued}|{principal_id}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    def token(self, principal_id: str, *, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        return f"{issued}.{self._sign(principal_id, issued)}"

    def verify(self, token: str | None, principal_id: str, *, now: float | None = None) -> bool:
        if not token or len(token) > 200 or "." not in token:
            return False
        issued_text, _, signature = token.partition(".")
        if not issued_text.isdigit():
            return False
        issued = int(issued_text)
        current = now if now is not None else time.time()
        if issued > current + 60 or current - issued > self.max_age:
            return False
        return hmac.compare_digest(signature, self._sign(principal_id, issued))


def same_origin(request: Request, trusted: Iterable[str] = ()) -> bool:
    """Whether a POST comes from a page of this site, judged by Origin, else Referer.

    The host part is compared with the Host header (and configured trusted origins), not
    the scheme: behind a TLS-terminating proxy the app sees http while browsers send https.
    A request with neither header is refused; every current browser sends Origin on POST.
    """
    allowed = {request.headers.get("host", "").lower()}
    allowed.update(urlsplit(o).netloc.lower() or o.lower() for o in trusted)
    allowed.discard("")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc.lower() in allowed
    referer = request.headers.get("referer")
    if referer:
        return urlsplit(referer).netloc.lower() in allowed
    return False


def trusted_origins(extra: Mapping[str, Any]) -> tuple[str, ...]:
    value = extra.get("trusted_origins", ())
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)
