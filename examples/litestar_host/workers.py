"""The host's background jobs and its cron schedule."""

from __future__ import annotations

import asyncio

from oban import Job, worker

from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec


@worker(queue="default")
class NightlySync:
    """Pulls the day's records from the upstream system."""

    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.1)


# Declared in code, stored in the database by the worker's runtime, so an operator can
# pause it without a deploy. The worker is named as oban names it: module and class.
NIGHTLY_SYNC = declare(
    CronEntrySpec(
        name="nightly_sync",
        worker=f"{NightlySync.__module__}.{NightlySync.__qualname__}",
        expression="0 2 * * *",
        timezone="Etc/UTC",
        queue="default",
        overlap_policy="skip",
        catch_up_policy="latest",
    )
)
