"""One oban node running Powertools' scheduler, in a process of its own, so a test can kill
it (SIGKILL: no stop, no resignation, its lease left to lapse).

    python -m tests.hostile.leader_node DATABASE_URL NODE START_ISO T0_WALL SPEED

Simulated time is shared with the test through the wall clock: ``now = START + (time() -
T0_WALL) * SPEED``. Leadership uses a 1 s lease (oban's default is 30 s) through oban's own
``leader.build`` extension point, so a lapsed lease is taken over within seconds.
Prints "ready" once the node runs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

LEASE_SECONDS = 1.0


class WallClock:
    """Simulated time derived from the wall clock, identical in every process."""

    def __init__(self, start: datetime, t0_wall: float, speed: float) -> None:
        self.start, self.t0_wall, self.speed = start, t0_wall, speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.t0_wall) * self.speed)

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        seconds = min(max((target - self.now()).total_seconds() / self.speed, 0.0), limit)
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=seconds)


@contextmanager
def short_leases() -> Iterator[None]:
    """oban builds its Leader through the ``leader.build`` extension with only
    ``enabled`` configurable; give it a short interval (the lease is that long)."""
    from oban import _extensions
    from oban._leader import build_leader

    previous: Callable[..., Any] | None = _extensions._extensions.get("leader.build")

    def build(config: dict[str, Any], **kwargs: Any) -> Any:
        return (previous or build_leader)({**config, "interval": LEASE_SECONDS}, **kwargs)

    _extensions.put_ext("leader.build", build)
    try:
        yield
    finally:
        if previous is None:
            _extensions._extensions.pop("leader.build", None)
        else:
            _extensions.put_ext("leader.build", previous)


def node(powertools: Any, database_url: str, name: str, clock: WallClock) -> tuple[Any, Any]:
    """An Oban instance (with its own pool) running Powertools' runtime."""
    from oban import Oban
    from psycopg_pool import AsyncConnectionPool

    from oban_powertools.runtime import Runtime

    pool = AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False)
    runtime = Runtime(
        powertools, clock=clock, declarations=[], import_oban_cron=False, leader_poll_interval=0.05
    )
    oban = Oban(
        pool=pool,
        node=name,
        queues={"default": 1},
        **runtime.oban_options(stager={"interval": 0.2}),
    )
    return oban, pool


async def main(database_url: str, name: str, start: datetime, t0_wall: float, speed: float) -> None:
    from tests.support.seams import make_powertools

    powertools = make_powertools(database_url)
    with short_leases():
        oban, pool = node(powertools, database_url, name, WallClock(start, t0_wall, speed))
        await pool.open()
        await oban.start()
        print("ready", flush=True)
        await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    url, node_name, start_iso, t0, speed_text = sys.argv[1:6]
    asyncio.run(
        main(url, node_name, datetime.fromisoformat(start_iso), float(t0), float(speed_text))
    )
