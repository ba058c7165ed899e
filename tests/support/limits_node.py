"""One oban node running a globally limited queue, in a process of its own, so a test can
SIGKILL it mid-run (no stop: its executing jobs stay executing until the lifeline rescues
them).

    python -m tests.support.limits_node DATABASE_URL NODE GLOBAL_LIMIT

Jobs sleep ``args["ms"]`` milliseconds. The lifeline (Powertools' accurate one) rescues
the jobs of a producer that has not heartbeated for 2 s (oban's refresher beats every
0.25 s here), every 0.5 s; leadership (which runs the lifeline) uses a 1 s lease, so a killed
leader is replaced within seconds. Prints "ready" once the node runs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from oban import worker

QUEUE = "killed"
RESCUE_AFTER = 3.0
LIFELINE_GRACE = 2.0


@worker(queue=QUEUE)
class KilledJob:
    async def process(self, job: Any) -> None:
        await asyncio.sleep(job.args["ms"] / 1000)


async def main(database_url: str, name: str, global_limit: int) -> None:
    from oban import Oban
    from psycopg_pool import AsyncConnectionPool

    from oban_powertools.runtime import Runtime
    from tests.hostile.leader_node import short_leases
    from tests.support.seams import make_powertools

    powertools = make_powertools(database_url, lifeline_grace_seconds=LIFELINE_GRACE)
    with short_leases():
        async with (
            powertools,
            AsyncConnectionPool(database_url, min_size=1, max_size=6, open=False) as pool,
        ):
            runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
            oban = Oban(
                pool=pool,
                node=name,
                queues={QUEUE: {"limit": 10, "global_limit": global_limit}},
                lifeline={"interval": 0.5, "rescue_after": RESCUE_AFTER},
                refresher={"interval": 0.25},
                **runtime.oban_options(stager={"interval": 0.2}),
            )
            await oban.start()
            print("ready", flush=True)
            await asyncio.Event().wait()  # until killed or terminated


if __name__ == "__main__":
    url, node_name, limit = sys.argv[1:4]
    asyncio.run(main(url, node_name, int(limit)))
