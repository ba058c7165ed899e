"""Checks over HTTP: the mounted control plane and the optional Oban Web bridge."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..config import ENV_PREFIX
from .check import Check


def _opener(url: str) -> urllib.request.OpenerDirector:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[urllib.request.BaseHandler] = [NoRedirect()]
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:  # a proxy from the environment cannot reach this machine's own ports
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def http_get(url: str, timeout: float) -> tuple[int, str | None]:
    """Status and Location of one GET, redirects not followed. Raises OSError when unreachable."""
    request = urllib.request.Request(url, headers={"User-Agent": "oban-powertools-doctor"})
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            return int(response.status), response.headers.get("Location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location")


def _unreachable(name: str, what: str, exc: OSError | ValueError, fix: str) -> Check:
    """A failed check for a GET that never got an answer."""
    # urllib wraps the socket's error in a URLError; its reason is what a reader needs.
    return Check(name, "fail", f"{what}: {getattr(exc, 'reason', exc)}", fix)


def check_mount(
    url: str, timeout: float, get: Callable[[str, float], tuple[int, str | None]]
) -> Check:
    if urlsplit(url).scheme not in ("http", "https"):
        return Check(
            "mount",
            "fail",
            f"{url!r} is not an http(s) URL",
            "Pass e.g. --url http://127.0.0.1:8000/ops/jobs/",
        )
    try:
        status, location = get(url, timeout)
        if status in (301, 302, 307, 308) and location and urljoin(url, location) == url + "/":
            url = url + "/"  # the mount's own trailing-slash redirect
            status, location = get(url, timeout)
    except (OSError, ValueError) as exc:
        return _unreachable(
            "mount",
            f"cannot reach {url}",
            exc,
            "Start the app (e.g. `uvicorn myapp.main:app`) and pass the URL it serves "
            "the mount at, e.g. --url http://127.0.0.1:8000/ops/jobs/",
        )
    if status == 200:
        return Check("mount", "ok", f"{url} answers 200")
    if status in (401, 403):
        return Check(
            "mount",
            "ok",
            f"{url} answers {status}: mounted, and the auth seam refuses an anonymous visitor",
        )
    if 300 <= status < 400 and location:
        return Check("mount", "ok", f"{url} redirects to {location} (sign-in)")
    if status == 404:
        return Check(
            "mount",
            "fail",
            f"{url} answers 404: nothing is mounted there",
            'Mount the control plane: app.mount("/ops/jobs", powertools.asgi_app()) '
            "(`oban-powertools install --app PATH` patches it in), restart the app, and "
            "pass the mount's URL with its trailing slash.",
        )
    if status >= 500:
        return Check(
            "mount",
            "fail",
            f"{url} answers {status}",
            "Read the app's log for the traceback. A common cause is the library's pool "
            "never opened: open it in the app's lifespan with `async with powertools:` "
            "(or FastAPI(lifespan=powertools_lifespan) from powertools_config.py).",
        )
    return Check(
        "mount",
        "fail",
        f"{url} answers {status}; expected 200, 401, 403 or a sign-in redirect",
        "Check that --url is the mount's address and that no middleware in front of it "
        "rewrites the request.",
    )


def check_bridge(
    bridge_url: str, timeout: float, get: Callable[[str, float], tuple[int, str | None]]
) -> Check:
    try:
        status, _ = get(bridge_url, timeout)
    except (OSError, ValueError) as exc:
        return _unreachable(
            "bridge",
            f"bridge_url {bridge_url} is unreachable",
            exc,
            "Start the Oban Web dashboard service at that address, or unset "
            f"{ENV_PREFIX}BRIDGE_URL to run without the bridge (/ops/jobs/oban then does "
            "not exist).",
        )
    if status >= 500:
        return Check(
            "bridge",
            "fail",
            f"bridge_url {bridge_url} answers {status}",
            "Check the dashboard service's log; the bridge forwards reads to it.",
        )
    return Check("bridge", "ok", f"{bridge_url} answers {status}; /ops/jobs/oban is read-only")
