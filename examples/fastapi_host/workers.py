"""The example host's background jobs and its cron schedule."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from oban import Job, worker

from oban_powertools import Sensitive, typed_worker
from oban_powertools.cron.declarations import declare
from oban_powertools.cron.entries import CronEntrySpec


@worker(queue="default")
class NightlySync:
    """Pulls the day's records from the upstream system."""

    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.2)


# One email per recipient and subject in any five minutes, however often the app asks
# (a retried request, a double click): the second enqueue returns the first job.
@worker(queue="mailers", unique={"period": 300, "keys": ["to", "subject"]})
class SendEmail:
    async def process(self, job: Job) -> None:
        if job.args.get("fail"):
            raise RuntimeError(f"SMTP 550: mailbox {job.args.get('to', '?')} unavailable")


@dataclass
class ReportArgs:
    report: str
    customer_id: int
    # The customer's key for the upstream API: never shown on any page (meta.redact).
    api_key: Annotated[str, Sensitive()] = ""


@typed_worker(queue="exports", args=ReportArgs, deadline=timedelta(minutes=30))
class GenerateReport:
    """A typed worker: args checked at enqueue and run, the row count recorded."""

    async def perform(self, args: ReportArgs, job: Job) -> dict[str, object]:
        await asyncio.sleep(0.1)
        return {"report": args.report, "customer_id": args.customer_id, "rows": 128}


@worker(queue="default")
class SyncAccount:
    """One account's sync with the billing provider: chained per account (``chain=``), so
    two syncs of one account never overlap or reorder. ``fail`` makes the demo's held
    chain: the link is discarded and the chain waits for an operator's resume_chain."""

    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.05)
        if job.args.get("fail"):
            raise RuntimeError(f"billing provider refused account {job.args.get('account')}")


@worker(queue="default")
class CloseLedger:
    """A month-end workflow step; ``fail_first`` fails the first attempt (a flaky upstream),
    so the demo has a workflow an operator can retry with retry_workflow."""

    async def process(self, job: Job) -> dict[str, object]:
        await asyncio.sleep(0.05)
        if job.args.get("fail_first") and job.attempt <= 1:
            raise RuntimeError("ledger service timed out")
        return {"period": job.args.get("period"), "closed": True}


@worker(queue="default")
class ImportFinished:
    """A batch callback: enqueued exactly once, when every job of the import finished."""

    async def process(self, job: Job) -> None:
        await asyncio.sleep(0.01)


# The canonical entry of the first operator session. Declared in code, stored in the
# database, so an operator can pause it without a deploy.
NIGHTLY_SYNC = declare(
    CronEntrySpec(
        name="nightly_sync",
        worker="examples.fastapi_host.workers.NightlySync",
        expression="0 2 * * *",
        timezone="Etc/UTC",
        queue="default",
        overlap_policy="queue_one",
        catch_up_policy="latest",
    )
)

declare(
    CronEntrySpec(
        name="hourly_digest",
        worker="examples.fastapi_host.workers.SendEmail",
        expression="15 * * * *",
        timezone="Europe/Berlin",
        queue="mailers",
        args={"to": "digest@example.com"},
        overlap_policy="skip",
    )
)
