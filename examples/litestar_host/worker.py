"""The host's worker process: oban's queues with Powertools' runtime inside.

``python -m examples.litestar_host.worker``; stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from oban import Oban

from . import settings, workers  # noqa: F401  (registers the workers and the cron entry)
from .powertools_config import powertools

log = logging.getLogger("litestar_host.worker")


async def main() -> None:
    pool = await Oban.create_pool(settings.DATABASE_URL, min_size=1, max_size=5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with powertools:
            oban = Oban(
                pool=pool,
                queues=settings.QUEUES,
                shutdown_grace_period=5.0,
                # Powertools' cron scheduler and queue-state applier run inside this instance:
                # every node of the instance passes them.
                **powertools.oban_options(),
            )
            async with oban:
                log.info("worker started: queues %s", sorted(settings.QUEUES))
                await stop.wait()
                log.info("worker stopping")
    finally:
        await pool.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
