"""``/oban``: the optional, read-only Oban Web bridge (registered only when configured).

Oban Web runs as its own dashboard service; this forwards GET and HEAD to it through the
same auth seam (``view_oban_web``) and nothing else: any other method gets 405, there is
no websocket, and no cookie crosses in either direction. Text responses are checked
against the display policy before they leave (``key: value`` pairs are offered to the
policy under their key on the ``bridge`` surface), so a value redacted on native pages
is redacted here too. Native pages stay the only mutation surface.

``/oban`` is a native landing page; ``/oban/<path>`` forwards to ``bridge_url/<path>``.
Serve the dashboard under the same prefix (e.g. ``bridge_url=http://dash:4000/ops/jobs/oban``
with the dashboard mounted at ``/ops/jobs/oban``) so the absolute links in its pages come
back through the bridge; redirects are rewritten to stay below it.

The HTTP client is the optional extra ``oban-powertools[bridge]``: this module is imported
only when ``bridge_url`` is set, and without the extra it stops the app's start-up with a
``ConfigError`` that names it (hosts without a bridge need no HTTP client at all).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ...errors import ConfigError
from ...seams import Resource
from ..access import plane_of, require
from ..pages import page

try:
    import httpx
except ModuleNotFoundError as exc:
    raise ConfigError(
        "bridge_url",
        "is set, but the bridge's HTTP client (httpx) is not installed",
        'Install the extra with `pip install "oban-powertools[bridge]"`, or unset bridge_url '
        "(OBAN_POWERTOOLS_BRIDGE_URL) to run without the Oban Web bridge.",
    ) from exc

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never passed back: cookies (the bridge must not set state in the operator's browser),
# lengths and encodings we recompute, and framing/CSP headers the app sets itself.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {
    "set-cookie",
    "set-cookie2",
    "content-length",
    "content-security-policy",
    "content-security-policy-report-only",
    "x-frame-options",
    "strict-transport-security",
    "alt-svc",
}
# Only what content negotiation and caching need; the host's Cookie and Authorization
# headers belong to the host app and never reach the dashboard.
FORWARDED_REQUEST_HEADERS = ("accept", "accept-language", "if-none-match", "if-modified-since")
SCANNED_TYPES = (
    "text/html",
    "application/json",
    "text/plain",
    "text/csv",
    "application/xml",
    "text/xml",
    "application/xhtml+xml",
)
MAX_SCANNED_BYTES = 10 * 1024 * 1024
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
POSTURE = "Inspection only"
BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


async def landing(request: Request) -> Response:
    viewer = await require(request, "view_oban_web", Resource("oban_web"))
    return await page(request, viewer, "bridge.html", {"posture": POSTURE}, section="oban")


def _upstream_url(base: str, path: str, query: str) -> str | None:
    if any(part == ".." for part in path.split("/")):
        return None
    target = base.rstrip("/") + "/" + quote(path, safe="/:@!$&'()*+,;=-._~")
    return f"{target}?{query}" if query else target


def _rewrite_location(location: str, base: str, prefix: str) -> str:
    """Keep redirects inside the bridge; never forward a redirect to another origin."""
    upstream = urlsplit(base)
    base_path = upstream.path.rstrip("/")
    target = urlsplit(location)
    if target.scheme or target.netloc:
        if (target.scheme, target.netloc) != (upstream.scheme, upstream.netloc):
            return prefix + "/"
    elif not location.startswith("/"):
        return location  # relative to the current bridged page: stays below the prefix
    path = target.path
    if base_path and not (path == base_path or path.startswith(base_path + "/")):
        return prefix + "/"
    rest = path[len(base_path) :] or "/"
    return prefix + rest + (f"?{target.query}" if target.query else "")


def _scanned(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in SCANNED_TYPES


async def proxy(request: Request) -> Response:
    viewer = await require(request, "view_oban_web", Resource("oban_web"))
    plane = plane_of(request)
    base = plane.bridge_url
    assert base is not None  # the route exists only when configured
    url = _upstream_url(base, request.path_params.get("path", ""), request.url.query)
    prefix = request.scope.get("root_path", "") + "/oban"
    if url is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    headers = {k: v for k in FORWARDED_REQUEST_HEADERS if (v := request.headers.get(k))}
    headers["accept-encoding"] = "identity"  # text is checked before it leaves
    headers["x-forwarded-prefix"] = prefix
    client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False)
    try:
        upstream = await client.send(
            client.build_request(request.method, url, headers=headers), stream=True
        )
    except httpx.HTTPError:
        await client.aclose()
        return await page(
            request,
            viewer,
            "bridge_error.html",
            {"why": "The Oban Web dashboard did not answer.", "posture": POSTURE},
            section="oban",
            status_code=502,
        )

    async def close() -> None:
        await upstream.aclose()
        await client.aclose()

    passed = {
        k: v for k, v in upstream.headers.multi_items() if k.lower() not in DROPPED_RESPONSE_HEADERS
    }
    if "location" in upstream.headers:
        passed["location"] = _rewrite_location(upstream.headers["location"], base, prefix)
    passed["x-powertools-posture"] = POSTURE
    content_type = upstream.headers.get("content-type", "")
    if request.method == "HEAD":
        await close()
        passed.pop("content-encoding", None)
        return Response(status_code=upstream.status_code, headers=passed)
    if not _scanned(content_type):
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=passed,
            background=BackgroundTask(close),
        )
    try:
        body = bytearray()
        async for chunk in upstream.aiter_bytes():
            body.extend(chunk)
            if len(body) > MAX_SCANNED_BYTES:
                # Too large to check against the display policy: refuse rather than leak.
                return await page(
                    request,
                    viewer,
                    "bridge_error.html",
                    {
                        "why": "The dashboard's response was too large to inspect safely.",
                        "posture": POSTURE,
                    },
                    section="oban",
                    status_code=502,
                )
    finally:
        await close()
    encoding = upstream.encoding or "utf-8"
    text = bytes(body).decode(encoding, errors="replace")
    html = "html" in content_type.lower()
    text = plane.display.on("bridge").scrub_pairs(
        "bridge", text, resource=Resource("oban_web"), html_escaped=html
    )
    if html:
        text = _with_banner(text, request.scope.get("root_path", "") + "/")
    passed.pop("content-encoding", None)
    return Response(
        text.encode(encoding, errors="replace"), status_code=upstream.status_code, headers=passed
    )


def _with_banner(text: str, home: str) -> str:
    """Label every bridged page: which venue this is, and that it cannot act."""
    banner = (
        '<div role="note" class="powertools-bridge-banner">Oban Web bridge · Inspection only. '
        f'Actions happen on the <a href="{quote(home, safe="/")}">Powertools control plane</a>.'
        "</div>"
    )
    match = BODY_TAG.search(text)
    if match is None:
        return banner + text
    return text[: match.end()] + banner + text[match.end() :]


routes = [
    Route("/oban", landing, methods=["GET", "HEAD"], name="oban"),
    Route("/oban/{path:path}", proxy, methods=["GET", "HEAD"], name="oban_proxy"),
]
