"""The example host's background jobs."""

from __future__ import annotations

import asyncio

from oban import Job, worker


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


@worker(queue="exports")
class GenerateReport:
    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.1)
