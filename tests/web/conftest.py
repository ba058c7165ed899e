"""Fixtures for the control plane: a Powertools per test database, a host, clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from oban_powertools import Powertools
from tests.web.helpers import build_powertools, client, host_app


@pytest.fixture
async def powertools(db_url: str) -> AsyncIterator[Powertools]:
    pt = build_powertools(db_url)
    try:
        yield pt
    finally:
        await pt.stop()


@pytest.fixture
def host(powertools: Powertools) -> Starlette:
    return host_app(powertools)


@pytest.fixture
async def as_user(host: Starlette) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """``as_user("ops-demo")`` → a client acting as that user (None: anonymous)."""
    async with AsyncExitStack() as stack:

        def make(user: str | None = None, **headers: Any) -> httpx.AsyncClient:
            c = client(host, user, **headers)
            stack.push_async_callback(c.aclose)
            return c

        yield make
