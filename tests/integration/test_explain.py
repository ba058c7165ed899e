""" "Why isn't this job running?" through the service: one prepared situation per reason,
each answered with that reason and its evidence, in the documented order."""

from __future__ import annotations

from typing import Any

import pytest

from oban_powertools import Config, Powertools
from oban_powertools.display import Display
from oban_powertools.read_models.explain import Explanation, explain, render_text
from tests.support import explain_scenarios as scenarios
from tests.support.seams import RedactingDisplay, RoleAuth


@pytest.fixture
async def powertools(db_url: str) -> Any:
    pt = Powertools(Config(database_url=db_url, auth=RoleAuth(), display=RedactingDisplay()))
    async with pt:
        yield pt


async def answer(powertools: Powertools, job_id: int) -> Explanation:
    found = await explain(powertools.db, Display(powertools.config.display, "page"), job_id)
    assert found is not None
    return found


def evidence_text(explanation: Explanation, code: str) -> str:
    (reason,) = [r for r in explanation.reasons if r.code == code]
    return "\n".join(f"{e.label}: {e.value}" for e in reason.evidence)


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
async def test_each_reason_with_its_evidence(powertools: Powertools, conn: Any, name: str) -> None:
    expect = await scenarios.SCENARIOS[name](conn)
    explanation = await answer(powertools, expect.job_id)
    if expect.code is None:
        assert not explanation.blocking, render_text(explanation)
        text = explanation.summary
    else:
        assert expect.code in [r.code for r in explanation.reasons], render_text(explanation)
        text = evidence_text(explanation, expect.code)
        (reason,) = [r for r in explanation.reasons if r.code == expect.code]
        assert reason.next_paths and all(p.ownership for p in reason.next_paths)
    for snippet in expect.evidence:
        assert snippet in text, render_text(explanation)


async def test_only_the_reason_that_applies(powertools: Powertools, conn: Any) -> None:
    expect = await scenarios.global_limit(conn)
    explanation = await answer(powertools, expect.job_id)
    assert [r.code for r in explanation.reasons] == ["global_limit"]
    assert explanation.summary.endswith("1 reason holds it back.")
    assert explanation.expected is None


async def test_every_reason_in_order(powertools: Powertools, conn: Any) -> None:
    """A queue paused by decision, at its local, global and rate limits, for a cron job
    whose entry is paused: all of them, in the documented order."""
    uuid = await scenarios.producer(conn, limit=1, paused=True)
    await conn.execute(
        "INSERT INTO powertools_queue_states (queue, paused, reason) VALUES (%s, true, 'x')",
        (scenarios.QUEUE,),
    )
    await conn.execute("UPDATE oban_producers SET meta = meta || '{\"paused\": false}'")
    await scenarios.limits(conn, global_limit=1, rate_allowed=1, rate_period=60)
    await conn.execute(
        "INSERT INTO powertools_limit_starts VALUES (%s, '', extract(epoch FROM now())::bigint, 1)",
        (scenarios.QUEUE,),
    )
    await scenarios.running(conn, 1, uuid)
    cron_job = await scenarios.paused_entry(conn)
    explanation = await answer(powertools, cron_job)
    assert [r.code for r in explanation.reasons] == [
        "queue_paused",
        "local_limit",
        "global_limit",
        "rate_limit",
        "cron_entry_paused",
    ]
    assert [r.blocking for r in explanation.reasons] == [True, True, True, True, False]
    assert "Still fetching on: worker-1" in evidence_text(explanation, "queue_paused")


async def test_partition_values_pass_the_display_policy(powertools: Powertools, conn: Any) -> None:
    """The partition key holds args values: a policy redacting an args field redacts it
    in the explanation too."""
    uuid = await scenarios.producer(conn)
    await scenarios.limits(
        conn,
        global_limit=1,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["api_key"],
    )
    await scenarios.running(conn, 1, uuid, args={"api_key": "sk-live-secret"})
    jid = await scenarios.job(conn, args={"api_key": "sk-live-secret"})
    explanation = await answer(powertools, jid)
    text = render_text(explanation)
    assert "in its partition (api_key=[redacted])" in text
    assert "sk-live-secret" not in str(explanation.to_dict())


async def test_jobs_ahead_are_counted_up_to_a_cap(powertools: Powertools, conn: Any) -> None:
    from oban_powertools.read_models.explain.gather import AHEAD_CAP

    await scenarios.producer(conn)
    await conn.execute(
        "INSERT INTO oban_jobs (state, queue, worker, args) SELECT 'available', %s, 'app.X',"
        " '{}' FROM generate_series(1, %s)",
        (scenarios.QUEUE, AHEAD_CAP + 5),
    )
    jid = await scenarios.job(conn)
    explanation = await answer(powertools, jid)
    assert explanation.expected is not None
    assert "once the 1,000+ jobs ahead of it" in explanation.expected


async def test_a_missing_job_has_no_answer(powertools: Powertools) -> None:
    assert await explain(powertools.db, Display(powertools.config.display), 999_999) is None
