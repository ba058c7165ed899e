"""Security for every response and every state-changing request.

* Headers: a strict Content-Security-Policy (no inline script or style anywhere in the
  templates), nosniff, no framing, same-origin referrers, no caching of operator data.
* Limits: an address longer than :data:`MAX_QUERY_BYTES` (414) or holding a NUL character
  (400), and a body larger than :data:`MAX_BODY_BYTES` (413) are refused before any
  handler, database or parser sees them.
* CSRF: a session-independent signed token (HMAC over the actor's principal id and an
  issue time) that every form carries, plus a same-origin check of Origin/Referer on POST.
  The token works whatever session mechanism the host uses, and a token minted for one
  operator is useless to another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
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

# Every filter of every page fits many times over; what is longer is not a real request.
MAX_QUERY_BYTES = 8 * 1024
# Above anything a page or script sends: a page's form carries at most 1000 fields of at
# most 1 MiB each (Starlette's form parser enforces both, 400), and the JSON API, where
# bulk sets of up to 100k ids go, has its own 2 MiB limit on top.
MAX_BODY_BYTES = 4 * 1024 * 1024

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
        static = local_path(scope).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def local_path(scope: Scope) -> str:
    """The request path relative to the mount (``/cron``, ``/api/...``)."""
    root: str = scope.get("root_path", "")
    path: str = scope.get("path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_api_path(scope: Scope) -> bool:
    return local_path(scope).startswith("/api/")


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            413, f"The request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB"
        )


class RequestLimits:
    """Pure ASGI middleware: refuses requests no page could have sent, before any handler.

    * a query string longer than ``max_query`` bytes: 414;
    * a NUL character in the path or the query: 400 (no name, id or filter holds one, and
      PostgreSQL text cannot store one, so it could only turn into a database error);
    * a body larger than ``max_body``: 413, from its declared length when it has one, else
      as soon as that many bytes arrived (the body is never buffered past the limit).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_query: int = MAX_QUERY_BYTES,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.max_query = max_query
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        path: str = scope.get("path", "")
        if len(query) > self.max_query:
            await _refuse(scope, send, 414, "The address is too long for any page here.")
            return
        if "\x00" in path or b"\x00" in query or b"%00" in query:
            await _refuse(scope, send, 400, "The address contains a NUL character.")
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            await _refuse(scope, send, 413, BodyTooLarge().detail)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # Raised inside the handler that reads the body, so the app's error
                    # pages (HTML, or JSON below /api) answer it.
                    raise BodyTooLarge()
            return message

        await self.app(scope, limited_receive, send)


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if is_api_path(scope):
        codes = {400: "bad_request", 413: "too_large", 414: "uri_too_long"}
        body = json.dumps({"error": {"code": codes.get(status, "bad_request"), "message": message}})
        content_type = "application/json"
    else:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{status} · Oban Powertools</title></head><body><main>"
            f"<h1>{status} · Request refused</h1><p>{message} Nothing was read or changed.</p>"
            "</main></body></html>"
        )
        content_type = "text/html; charset=utf-8"
    encoded = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(encoded)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


class Csrf:
    """Signed, actor-bound, expiring tokens; no server-side state."""

    def __init__(self, secret: str | bytes | None, *, max_age: int = CSRF_MAX_AGE) -> None:
        if secret is None:
            # A random per-process secret: tokens stop verifying on restart (forms reload),
            # which is safe; multi-process hosts should set Config(csrf_secret=...).
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
