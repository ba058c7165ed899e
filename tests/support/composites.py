"""Helpers for the chain and batch proofs: several oban nodes on one database with the
runtime's own options (a short stager interval, so retries are staged promptly)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools.runtime import Runtime
from tests.support.seams import make_powertools


@asynccontextmanager
async def composite_nodes(
    url: str,
    names: Sequence[str],
    queues: Mapping[str, Any],
    *,
    stager_interval: float = 0.2,
    repair_interval: float = 5.0,
    **oban_kwargs: Any,
) -> AsyncIterator[list[Oban]]:
    """Started oban instances, one per name, each with its own pool and Runtime."""
    async with AsyncExitStack() as stack:
        nodes: list[Oban] = []
        for name in names:
            pt = make_powertools(url)
            await stack.enter_async_context(pt)
            pool = AsyncConnectionPool(url, min_size=1, max_size=8, open=False)
            await stack.enter_async_context(pool)
            runtime = Runtime(
                pt,
                declarations=[],
                import_oban_cron=False,
                workflow_repair_interval=repair_interval,
            )
            oban = Oban(
                pool=pool,
                node=name,
                queues=dict(queues),
                **oban_kwargs,
                **runtime.oban_options(stager={"interval": stager_interval}),
            )
            await oban.start()
            stack.push_async_callback(oban.stop)
            nodes.append(oban)
        yield nodes
