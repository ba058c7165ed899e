"""Chains on real oban nodes: links of one key run one after another in insertion
order; a failed link holds its chain or lets it skip on; bad options insert nothing.

The three nodes run in this process (own pools, own runtimes, own node names), so the
workers record what really ran where: every link's start and end."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from typing import Any

import pytest
from oban import Cancel, Oban, worker

from oban_powertools import ChainError
from oban_powertools.chains import chained
from oban_powertools.runtime import chain_release
from tests.support.composites import composite_nodes as oban_nodes
from tests.support.limits import count, query
from tests.support.waiting import eventually

RUNS: list[tuple[str, int, float, float, str]] = []  # key, seq, start, end, node
NODES = ["chain-a", "chain-b", "chain-c"]


@worker(queue="chained", max_attempts=1)
class Link:
    async def process(self, job: Any) -> Any:
        start = time.monotonic()
        await asyncio.sleep(job.args.get("ms", 0) / 1000)
        node = job.attempted_by[0] if job.attempted_by else ""
        RUNS.append((job.meta["chain"], job.meta["chain_seq"], start, time.monotonic(), node))
        outcome = job.args.get("outcome")
        if outcome == "fail":
            raise RuntimeError("link failed on purpose")
        if outcome == "cancel":
            return Cancel("cancelled on purpose")
        return None


LINKS = """
SELECT l.chain_key, l.seq, l.job_id, l.outcome, j.state::text AS state
FROM powertools_chain_links l JOIN oban_jobs j ON j.id = l.job_id
WHERE l.chain_key = %(key)s ORDER BY l.seq
"""
CHAIN = "SELECT state, head_seq, links_completed, links_failed FROM powertools_chains WHERE key = %(key)s"
UNFINISHED = "SELECT count(*) AS n FROM oban_jobs WHERE queue = 'chained' AND state NOT IN ('completed', 'discarded', 'cancelled')"


@pytest.fixture(autouse=True)
def clear_runs() -> None:
    RUNS.clear()


def assert_in_order_without_overlap(keys: int, per_key: int) -> None:
    by_key: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for key, seq, start, end, _ in RUNS:
        by_key[key].append((seq, start, end))
    assert len(by_key) == keys
    for key, runs in by_key.items():
        runs.sort(key=lambda r: r[1])  # by start time
        assert [seq for seq, _, _ in runs] == list(range(1, per_key + 1)), key
        for (_, _, end), (_, start, _) in zip(runs, runs[1:], strict=False):
            assert start >= end, f"{key}: a link started before its predecessor ended"


async def test_links_of_one_key_run_in_insertion_order_across_three_nodes(db_url: str) -> None:
    keys, per_key = 10, 100
    rng = random.Random(7)
    # Three slots per node: the ten chains' heads cannot all run on one node.
    async with oban_nodes(db_url, NODES, {"chained": 3}) as nodes:
        # Inserted from all three nodes at once, keys interleaved, in batches of ten:
        # a key's insertion order is the order its chain row lock gave (chain_seq).
        async def insert_from(oban: Oban, rounds: int) -> None:
            for _ in range(rounds):
                jobs = [
                    Link.new({"ms": rng.randint(0, 5)}, chain=f"account:{k}") for k in range(keys)
                ]
                await oban.enqueue_many(*jobs)

        await asyncio.gather(*(insert_from(n, r) for n, r in zip(nodes, (34, 33, 33), strict=True)))
        await eventually(lambda: _none_unfinished(db_url), within=90, what="1,000 links ran")
    assert len(RUNS) == keys * per_key
    assert_in_order_without_overlap(keys, per_key)
    # Across nodes: a chain's next link is usually fetched by the node that acked the
    # link before it (it freed the slot), so not every node need run links of every run.
    assert len({node for *_, node in RUNS}) >= 2
    done = await query(db_url, "SELECT count(*) AS n FROM powertools_chains WHERE state = 'idle'")
    assert done[0]["n"] == keys


async def _none_unfinished(url: str) -> bool:
    return await count(url, UNFINISHED) == 0


async def test_a_link_inserted_after_its_chain_went_idle_runs_at_once(db_url: str) -> None:
    async with oban_nodes(db_url, ["chain-solo"], {"chained": 5}) as (oban,):
        first = await oban.enqueue(Link.new({}, chain="solo"))
        assert first.state == "available"
        second = await oban.enqueue(Link.new({}, chain="solo"))
        assert second.state in ("suspended", "available")  # depends on whether 1 finished
        await eventually(lambda: _none_unfinished(db_url), what="both ran")
        third = await oban.enqueue(Link.new({}, chain="solo"))
        assert third.state == "available"
        await eventually(lambda: _none_unfinished(db_url), what="third ran")
    assert [seq for _, seq, *_ in sorted(RUNS, key=lambda r: r[2])] == [1, 2, 3]


@pytest.mark.parametrize("outcome", ["fail", "cancel"])
async def test_a_failed_link_holds_its_chain_by_default(db_url: str, outcome: str) -> None:
    async with oban_nodes(db_url, ["chain-hold"], {"chained": 5}) as (oban,):
        await oban.enqueue_many(
            Link.new({}, chain="held"),
            Link.new({"outcome": outcome}, chain="held"),
            Link.new({}, chain="held"),
            Link.new({}, chain="held"),
        )

        async def held() -> bool:
            rows = await query(db_url, CHAIN, {"key": "held"})
            return rows[0]["state"] == "held"

        await eventually(held, what="the chain held at link 2")
        chain = (await query(db_url, CHAIN, {"key": "held"}))[0]
        assert chain["head_seq"] == 2 and chain["links_completed"] == 1
        assert chain["links_failed"] == 1
        links = await query(db_url, LINKS, {"key": "held"})
        expected = "discarded" if outcome == "fail" else "cancelled"
        assert [r["state"] for r in links] == ["completed", expected, "suspended", "suspended"]
        assert [r["outcome"] for r in links] == ["completed", expected, None, None]
        # Later inserts wait behind the hold too.
        late = await oban.enqueue(Link.new({}, chain="held"))
        assert late.state == "suspended"


async def test_a_failed_link_with_skip_lets_the_chain_move_on(db_url: str) -> None:
    async with oban_nodes(db_url, ["chain-skip"], {"chained": 5}) as (oban,):
        await oban.enqueue_many(
            Link.new({}, chain=chained("skips")),
            Link.new({"outcome": "fail"}, chain=chained("skips", on_failure="skip")),
            Link.new({"outcome": "cancel"}, chain={"key": "skips", "on_failure": "skip"}),
            Link.new({}, chain="skips"),
        )
        await eventually(lambda: _none_unfinished(db_url), what="the chain ran through")
        links = await query(db_url, LINKS, {"key": "skips"})
    assert [r["state"] for r in links] == ["completed", "discarded", "cancelled", "completed"]
    chain = (await query(db_url, CHAIN, {"key": "skips"}))[0]
    assert (chain["state"], chain["links_completed"], chain["links_failed"]) == ("idle", 2, 2)
    assert [seq for _, seq, *_ in sorted(RUNS, key=lambda r: r[2])] == [1, 2, 3, 4]


@worker(queue="chained_retry", max_attempts=2)
class FlakyLink:
    async def process(self, job: Any) -> None:
        RUNS.append((job.meta["chain"], job.meta["chain_seq"], time.monotonic(), 0.0, ""))
        if job.attempt == 1:
            raise RuntimeError("first attempt fails")

    def backoff(self, job: Any) -> int:
        return 1


async def test_a_retryable_link_is_not_a_failure_the_chain_waits_for_it(db_url: str) -> None:
    async with oban_nodes(db_url, ["chain-retry"], {"chained_retry": 5}) as (oban,):
        await oban.enqueue_many(FlakyLink.new({}, chain="flaky"), FlakyLink.new({}, chain="flaky"))
        await eventually(lambda: _all_completed(db_url, 2), within=15, what="both links completed")
    assert [seq for _, seq, *_ in RUNS] == [1, 1, 2, 2]


async def _all_completed(url: str, n: int) -> bool:
    return await count(url, "SELECT count(*) AS n FROM oban_jobs WHERE state = 'completed'") == n


async def test_a_head_cancelled_through_obans_own_path_is_repaired(db_url: str) -> None:
    async with oban_nodes(db_url, ["chain-repair"], {"paused_chain": 1}) as (oban,):
        await oban.pause_queue("paused_chain")
        a, b = await oban.enqueue_many(
            Link.new({}, chain="bypassed", queue="paused_chain"),
            Link.new({}, chain="bypassed", queue="paused_chain"),
        )
        await oban.cancel_job(a.id)  # oban's own cancel: no ack reaches the chain
        repaired = await chain_release.repair(oban._query._pool, "public")
        assert repaired == 1
        chain = (await query(db_url, CHAIN, {"key": "bypassed"}))[0]
        # A cancelled link holds the chain (the default), as if its ack had said so.
        assert (chain["state"], chain["head_seq"]) == ("held", 1)
        assert await chain_release.repair(oban._query._pool, "public") == 0


async def test_the_leader_repairs_a_chain_whose_head_oban_cancelled_on_its_own(
    db_url: str,
) -> None:
    async with oban_nodes(
        db_url, ["chain-leader"], {"chained": 2, "paused_chain": 1}, repair_interval=0.2
    ) as (oban,):
        await oban.pause_queue("paused_chain")
        head, nxt = await oban.enqueue_many(
            Link.new({}, chain={"key": "repaired", "on_failure": "skip"}, queue="paused_chain"),
            Link.new({}, chain="repaired"),
        )
        await oban.cancel_job(head.id)  # no ack reaches the chain

        async def next_ran() -> bool:
            rows = await query(db_url, LINKS, {"key": "repaired"})
            return [r["state"] for r in rows] == ["cancelled", "completed"]

        await eventually(next_ran, within=15, what="the leader's repair released link 2")
    assert [r["outcome"] for r in await query(db_url, LINKS, {"key": "repaired"})] == [
        "cancelled",
        "completed",
    ]


async def test_bad_chain_options_raise_clear_errors_and_insert_nothing(db_url: str) -> None:
    async with oban_nodes(db_url, ["chain-bad"], {"chained": 1}) as (oban,):
        for bad, message in [
            ("", "non-empty string"),
            ("   ", "non-empty string"),
            ({"key": "k", "on_failure": "retry"}, "on_failure"),
            ({"key": "k", "order": 1}, "not a chain option"),
            (42, "must be a chain key"),
        ]:
            with pytest.raises(ChainError, match=message):
                await oban.enqueue_many(Link.new({}), Link.new({}, chain=bad))
        with pytest.raises(ChainError, match="cannot be unique"):
            await oban.enqueue(Link.new({}, chain="k", unique={"period": 60}))
    assert await count(db_url, "SELECT count(*) AS n FROM oban_jobs") == 0
    assert await count(db_url, "SELECT count(*) AS n FROM powertools_chains") == 0


async def test_a_chain_insert_in_a_rolled_back_transaction_leaves_nothing(db_url: str) -> None:
    import psycopg

    async with oban_nodes(db_url, ["chain-tx"], {"chained": 1}) as (oban,):
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            async with conn.transaction(force_rollback=True):
                job = await oban.enqueue(Link.new({}, chain="tx"), conn=conn)
                assert job.id is not None
    assert await count(db_url, "SELECT count(*) AS n FROM oban_jobs") == 0
    assert await count(db_url, "SELECT count(*) AS n FROM powertools_chains") == 0
