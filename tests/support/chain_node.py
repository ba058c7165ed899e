"""One oban node running chain links, in a process of its own, so a test can SIGKILL it
mid-link (no stop: its executing link stays executing until the lifeline rescues it).

    python -m tests.support.chain_node DATABASE_URL NODE

Links sleep ``args["ms"]`` milliseconds. The lifeline (Powertools' accurate one) rescues
the jobs of a producer that has not heartbeated for 2 s (oban's refresher beats every
0.25 s here), every 0.5 s; leadership uses a 1 s lease. Prints "ready" once the node runs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from oban import worker

QUEUE = "chain_killed"
RESCUE_AFTER = 3.0  # oban's age-based rescue; the accurate lifeline does not use it
LIFELINE_GRACE = 2.0


@worker(queue=QUEUE)
class KilledLink:
    async def process(self, job: Any) -> None:
        await asyncio.sleep(job.args["ms"] / 1000)


async def main(database_url: str, name: str) -> None:
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
                queues={QUEUE: 5},
                lifeline={"interval": 0.5, "rescue_after": RESCUE_AFTER},
                refresher={"interval": 0.25},
                **runtime.oban_options(stager={"interval": 0.2}),
            )
            await oban.start()
            print("ready", flush=True)
            await asyncio.Event().wait()  # until killed or terminated


if __name__ == "__main__":
    url, node_name = sys.argv[1:3]
    asyncio.run(main(url, node_name))
