"""Waiting for something asynchronous to become true, with a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = 5.0, what: str = ""
) -> None:
    """Poll ``check`` (plain or async) until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what or 'condition not met'}")
        await asyncio.sleep(0.02)
