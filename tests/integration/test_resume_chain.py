"""resume_chain through the one pipeline: the preview names the failed link and the
exact job it releases, the confirm releases it and audits, drift is refused, a chain
that is not held is refused, and the chain then runs on in order on a real node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from oban import worker

from oban_powertools import Powertools
from oban_powertools.actions import errors
from tests.support.composites import composite_nodes
from tests.support.limits import query
from tests.support.seams import OPERATOR, make_powertools
from tests.support.waiting import eventually

RAN: list[int] = []


@worker(queue="resumed", max_attempts=1)
class Step:
    async def process(self, job: Any) -> None:
        RAN.append(job.meta["chain_seq"])
        if job.args.get("fail"):
            raise RuntimeError("step failed on purpose")


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    RAN.clear()
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


CHAIN = "SELECT state, head_seq FROM powertools_chains WHERE key = %(key)s"
STATES = "SELECT id, state::text AS state FROM oban_jobs ORDER BY id"


async def held_chain(oban: Any, db_url: str, key: str, links: int) -> Any:
    jobs = await oban.enqueue_many(
        Step.new({}, chain=key),
        Step.new({"fail": True}, chain=key),
        *(Step.new({}, chain=key) for _ in range(links - 2)),
    )

    async def is_held() -> bool:
        return (await query(db_url, CHAIN, {"key": key}))[0]["state"] == "held"

    await eventually(is_held, what="the chain held at its failed link")
    return jobs


async def test_preview_names_the_jobs_and_confirm_releases_the_next_link(
    pt: Powertools, db_url: str
) -> None:
    async with composite_nodes(db_url, ["resume-a"], {"resumed": 2}) as (oban,):
        jobs = await held_chain(oban, db_url, "acct:1", 4)
        preview = await pt.pipeline.preview(OPERATOR, "resume_chain", "acct:1", {}, surface="web")
        assert preview.effect == (
            f"Moves chain acct:1 past its failed link 2 (job {jobs[1].id}, discarded) and "
            f"releases link 3 (job {jobs[2].id}, suspended) ({jobs[2].worker} on queue "
            "resumed) to run now; the links after it run in order as before. The failed "
            "job stays as it is."
        )
        assert (await query(db_url, CHAIN, {"key": "acct:1"}))[0]["state"] == "held"
        result = await pt.pipeline.execute(
            OPERATOR, preview.token, "fixed the upstream account", surface="web"
        )

        async def idle() -> bool:
            chain = (await query(db_url, CHAIN, {"key": "acct:1"}))[0]
            return chain == {"state": "idle", "head_seq": None}

        await eventually(idle, what="links 3 and 4 ran, the chain idle")
        assert RAN == [1, 2, 3, 4]
    (event,) = await query(db_url, "SELECT * FROM powertools_audit_events")
    assert event["id"] == result.audit_event_id
    assert (event["action"], event["command"]) == ("chain.resumed", "resume_chain")
    assert (event["resource_type"], event["resource_id"]) == ("chain", "acct:1")
    assert event["before"]["head_seq"] == 2
    assert event["before"]["next_job_id"] == jobs[2].id
    assert event["after"]["released_job_id"] == jobs[2].id
    assert event["reason"] == "fixed the upstream account"
    states = [r["state"] for r in await query(db_url, STATES)]
    assert states == ["completed", "discarded", "completed", "completed"]


async def test_a_chain_that_moved_since_the_preview_is_drift(pt: Powertools, db_url: str) -> None:
    async with composite_nodes(db_url, ["resume-b"], {"resumed": 2}) as (oban,):
        await held_chain(oban, db_url, "acct:2", 2)
        preview = await pt.pipeline.preview(OPERATOR, "resume_chain", "acct:2", {}, surface="web")
        assert "no link waits after it, so the chain becomes idle" in preview.effect
        # A link appended meanwhile: the resume would now release it, not idle the chain.
        await oban.enqueue(Step.new({}, chain="acct:2"))
        with pytest.raises(errors.PreviewDrifted):
            await pt.pipeline.execute(
                OPERATOR, preview.token, "resume after the fix", surface="web"
            )
        assert (await query(db_url, CHAIN, {"key": "acct:2"}))[0]["state"] == "held"
    assert RAN == [1, 2]


async def test_a_chain_that_is_not_held_is_refused(pt: Powertools, db_url: str) -> None:
    await query(
        db_url,
        "INSERT INTO powertools_chains (key, state, head_seq, next_seq) "
        "VALUES ('busy', 'running', 1, 1) RETURNING key",
    )
    with pytest.raises(errors.NotApplicable, match="the chain is running, not held"):
        await pt.pipeline.preview(OPERATOR, "resume_chain", "busy", {}, surface="web")
    with pytest.raises(errors.UnknownTarget):
        await pt.pipeline.preview(OPERATOR, "resume_chain", "nothing-here", {}, surface="web")
    with pytest.raises(errors.InvalidTargets):
        await pt.pipeline.preview(OPERATOR, "resume_chain", "  ", {}, surface="web")
