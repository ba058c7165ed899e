"""The control plane's ASGI app (the full pages land with the web layer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..seams import Resource, resolve

if TYPE_CHECKING:
    from ..powertools import Powertools


def create_app(powertools: Powertools) -> Starlette:
    auth = powertools.config.auth

    async def overview(request: Request) -> Response:
        actor = await resolve(auth.current_actor(request))
        if actor is None:
            return PlainTextResponse("Sign in to view the operator console.", status_code=401)
        if not await resolve(auth.authorize(actor, "view_overview", Resource("overview"))):
            return PlainTextResponse("Forbidden", status_code=403)
        return HTMLResponse("<!doctype html><title>Overview</title><h1>Overview</h1>")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await powertools.start()
        try:
            yield
        finally:
            await powertools.stop()

    return Starlette(routes=[Route("/", overview)], lifespan=lifespan)
