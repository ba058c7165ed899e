"""The example host: a FastAPI app with session login and the control plane at /ops/jobs.

Run with ``uvicorn examples.fastapi_host.app:app``; ``make demo`` does it for you, beside
the worker process (``examples.fastapi_host.worker``).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import escape

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.middleware.sessions import SessionMiddleware

from . import accounts, settings
from .powertools_config import powertools


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Mounted apps do not get lifespan events, so the host opens the library's pool.
    async with powertools:
        # Start-up is done: keep what exists now out of every later collection
        # (docs/installation.md, "In production: the garbage collector's pauses").
        gc.freeze()
        yield


app = FastAPI(title="Example host", lifespan=lifespan)
app.add_middleware(SessionMiddleware, secret_key=settings.SESSION_SECRET, same_site="lax")
app.mount("/ops/jobs", powertools.asgi_app())

LOGIN_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in</title></head><body><main><h1>Sign in</h1>{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form></main></body></html>"""


@app.get("/", response_class=HTMLResponse)
async def home(request: Request) -> str:
    user = accounts.find(request.session.get("username"))
    who = escape(user.display_name) if user else "nobody"
    return (
        f"<!doctype html><title>Example host</title><p>Signed in as {who}. "
        '<a href="/ops/jobs/">Operator console</a></p>'
    )


@app.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "/ops/jobs/") -> str:
    return LOGIN_FORM.format(error="", next=escape(next))


@app.post("/login", response_model=None)
async def login(
    request: Request, username: str = Form(), password: str = Form(), next: str = Form("/ops/jobs/")
) -> HTMLResponse | RedirectResponse:
    user = accounts.authenticate(username, password)
    if user is None:
        return HTMLResponse(
            LOGIN_FORM.format(
                error="<p role='alert'>Wrong username or password.</p>", next=escape(next)
            ),
            status_code=401,
        )
    request.session["username"] = user.username
    # Only same-site paths: never redirect to another origin after login.
    target = next if next.startswith("/") and not next.startswith("//") else "/ops/jobs/"
    return RedirectResponse(target, status_code=303)


@app.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
