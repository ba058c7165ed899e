"""One oban node running workflow steps, in a process of its own, so a test can SIGKILL
it mid-step (its executing step stays executing until the lifeline rescues it).

    python -m tests.support.workflows_node DATABASE_URL NODE

Steps are tests.support.workflows.RecordedStep. The lifeline rescues jobs executing for
more than 3 s, every 0.5 s; leadership (which runs the lifeline and the workflow repair)
uses a 1 s lease, so a killed leader is replaced within seconds. Prints "ready" once the
node runs.
"""

from __future__ import annotations

import asyncio
import sys

RESCUE_AFTER = 3.0


async def main(database_url: str, name: str) -> None:
    from oban import Oban
    from psycopg_pool import AsyncConnectionPool

    from oban_powertools.runtime import Runtime
    from tests.hostile.leader_node import short_leases
    from tests.support.seams import make_powertools
    from tests.support.workflows import QUEUE, open_runs

    powertools = make_powertools(database_url)
    await open_runs(database_url)
    with short_leases():
        async with (
            powertools,
            AsyncConnectionPool(database_url, min_size=1, max_size=6, open=False) as pool,
        ):
            runtime = Runtime(
                powertools, declarations=[], import_oban_cron=False, workflow_repair_interval=1.0
            )
            oban = Oban(
                pool=pool,
                node=name,
                queues={QUEUE: 5},
                lifeline={"interval": 0.5, "rescue_after": RESCUE_AFTER},
                **runtime.oban_options(stager={"interval": 0.2}),
            )
            await oban.start()
            print("ready", flush=True)
            await asyncio.Event().wait()  # until killed or terminated


if __name__ == "__main__":
    url, node_name = sys.argv[1:3]
    asyncio.run(main(url, node_name))
