"""The example host's background jobs and its cron schedule (imported by oban_worker)."""

from __future__ import annotations

import asyncio

from oban import Job, worker

from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec


@worker(queue="default")
class NightlySync:
    """Pulls the day's records from the upstream system."""

    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.2)


@worker(queue="mailers")
class SendEmail:
    async def process(self, job: Job) -> None:
        if job.args.get("fail"):
            raise RuntimeError(f"SMTP 550: mailbox {job.args.get('to', '?')} unavailable")


# The entry of the first operator session, stored in the database so an operator can pause
# it without a deploy.
NIGHTLY_SYNC = declare(
    CronEntrySpec(
        name="nightly_sync",
        worker=f"{__name__}.NightlySync",
        expression="0 2 * * *",
        timezone="Etc/UTC",
        queue="default",
        overlap_policy="queue_one",
        catch_up_policy="latest",
    )
)
