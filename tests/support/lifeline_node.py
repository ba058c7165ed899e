"""One oban node with Powertools' runtime (and so its accurate lifeline), in a process of
its own, so a test can SIGKILL it while its jobs run.

    python -m tests.support.lifeline_node DATABASE_URL NODE LIMIT [LEADER]

``LIMIT`` is the node's local limit for the ``lifeline`` queue (0: the node does not run
it, but still leads and runs the lifeline when ``LEADER`` is ``leader``). Every run of a
:class:`CountedJob` adds a row to ``lifeline_runs`` (the test creates it) before it
sleeps: ``args["seconds"]`` on the node named ``args["slow_on"]``, a moment elsewhere.

The lifeline runs every ``INTERVAL`` seconds with a grace of ``GRACE`` seconds; oban's
refresher heartbeats every ``HEARTBEAT`` seconds; oban's ``rescue_after`` is ``RESCUE_AFTER``
(2 s), far shorter than the jobs, to show it no longer rescues a live node's job.
Leadership uses a 1 s lease. Prints "ready" once the node runs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from oban import worker

QUEUE = "lifeline"
GRACE = 2.0
INTERVAL = 0.5
HEARTBEAT = 0.25
RESCUE_AFTER = 2.0

RECORD_RUN = "INSERT INTO lifeline_runs (job_id, attempt, node) VALUES (%s, %s, %s)"

_pool: Any = None


@worker(queue=QUEUE, max_attempts=5)
class CountedJob:
    async def process(self, job: Any) -> None:
        node = job.attempted_by[0]
        async with _pool.connection() as conn:
            await conn.execute(RECORD_RUN, (job.id, job.attempt, node))
        slow = job.args.get("slow_on") in (node, "*")
        await asyncio.sleep(float(job.args["seconds"]) if slow else 0.01)


async def main(database_url: str, name: str, limit: int, leader: bool) -> None:
    global _pool
    from oban import Oban
    from psycopg_pool import AsyncConnectionPool

    from oban_powertools.runtime import Runtime
    from tests.hostile.leader_node import short_leases
    from tests.support.seams import make_powertools

    powertools = make_powertools(database_url, lifeline_grace_seconds=GRACE)
    with short_leases():
        async with (
            powertools,
            AsyncConnectionPool(database_url, min_size=1, max_size=8, open=False) as pool,
            AsyncConnectionPool(database_url, min_size=1, max_size=20, open=False) as jobs_pool,
        ):
            # oban resolves the worker by name, importing this module anew (this run is
            # __main__): the pool goes to that copy.
            from tests.support import lifeline_node

            lifeline_node._pool = _pool = jobs_pool
            runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
            oban = Oban(
                pool=pool,
                node=name,
                queues={QUEUE: limit} if limit else {},
                leadership=leader,
                lifeline={"interval": INTERVAL, "rescue_after": RESCUE_AFTER},
                refresher={"interval": HEARTBEAT},
                **runtime.oban_options(stager={"interval": 0.2}),
            )
            await oban.start()
            print("ready", flush=True)
            await asyncio.Event().wait()  # until killed or terminated


if __name__ == "__main__":
    url, node_name, queue_limit = sys.argv[1:4]
    is_leader = len(sys.argv) > 4 and sys.argv[4] == "leader"
    asyncio.run(main(url, node_name, int(queue_limit), is_leader))
