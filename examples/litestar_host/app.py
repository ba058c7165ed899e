"""The host's web app: Litestar pages, a cookie sign-in, and the control plane at /ops/jobs.

Run with ``uvicorn examples.litestar_host.app:app`` beside the worker
(``python -m examples.litestar_host.worker``); docs/hosts/litestar.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Annotated, Any

from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from oban_powertools import Powertools
from oban_powertools.contrib.litestar import PowertoolsPlugin

from . import accounts
from .powertools_config import powertools

CONSOLE = "/ops/jobs/"

LOGIN_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in</title></head><body><main><h1>Sign in</h1>{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></main></body></html>"""


@dataclass
class LoginForm:
    username: str
    password: str
    next: str = CONSOLE


def _same_site(target: str) -> str:
    # Only paths of this site: never redirect to another origin after signing in.
    return target if target.startswith("/") and not target.startswith("//") else CONSOLE


@get("/", media_type=MediaType.HTML)
async def home(request: Request[Any, Any, Any]) -> str:
    user = accounts.signed_in(request.cookies.get(accounts.COOKIE))
    who = escape(user.display_name) if user else "nobody"
    return (
        f"<!doctype html><title>Litestar host</title><p>Signed in as {who}. "
        f'<a href="{CONSOLE}">Operator console</a></p>'
    )


@get("/login", media_type=MediaType.HTML)
async def login_form(request: Request[Any, Any, Any]) -> str:
    target = _same_site(request.query_params.get("next") or CONSOLE)
    return LOGIN_FORM.format(error="", next=escape(target))


@post("/login")
async def login(
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[str] | Redirect:
    user = accounts.authenticate(data.username, data.password)
    if user is None:
        error = "<p role='alert'>Wrong username or password.</p>"
        return Response(
            LOGIN_FORM.format(error=error, next=escape(_same_site(data.next))),
            status_code=401,
            media_type=MediaType.HTML,
        )
    cookie = Cookie(
        key=accounts.COOKIE,
        value=accounts.session_cookie(user),
        max_age=accounts.MAX_AGE,
        httponly=True,
        samesite="lax",
    )
    return Redirect(_same_site(data.next), status_code=303, cookies=[cookie])


@post("/logout")
async def logout() -> Redirect:
    return Redirect("/login", status_code=303, cookies=[Cookie(key=accounts.COOKIE, max_age=0)])


def create_app(powertools: Powertools = powertools) -> Litestar:
    # The plugin mounts the control plane at /ops/jobs and opens its pool with the app.
    return Litestar(
        route_handlers=[home, login_form, login, logout],
        plugins=[PowertoolsPlugin(powertools)],
    )


app = create_app()
