"""Fair share between partitions: a hot partition with 10,000 available jobs does not
starve one with 10 that arrives while the hot one runs.

The bound: once the small partition's jobs are available, every fetch serves the
partitions round-robin, so each small job waits at most about one hot start per free
slot. We count the hot partition's starts between the small jobs' insert and the last
small start (from ``attempted_at``, which the claiming fetch stamps with its clock)."""

from __future__ import annotations

from typing import Any

import pytest
from oban import worker
from oban.worker import worker_name

from tests.support.limits import count, oban_nodes, query
from tests.support.waiting import eventually

QUEUE = "fair"
BY_CUSTOMER = {"fields": ["args"], "keys": ["customer_id"]}


@worker(queue=QUEUE)
class FairJob:
    async def process(self, job: Any) -> None:
        return None


INSERT = """
INSERT INTO oban_jobs (worker, queue, args, state, scheduled_at)
SELECT %(worker)s, %(queue)s, jsonb_build_object('customer_id', %(customer)s::text, 'n', g),
       'available', timezone('UTC', now())
FROM generate_series(1, %(n)s) AS g
RETURNING timezone('UTC', now()) AS at
"""

STARTED = """
SELECT count(*) AS n FROM oban_jobs
WHERE queue = %(queue)s AND args ->> 'customer_id' = %(customer)s AND attempted_at IS NOT NULL
"""


@pytest.mark.parametrize(
    ("limits", "bound"),
    [
        # At most 2 per customer: the small partition has its own 2 slots.
        ({"global_limit": {"allowed": 2, "partition": BY_CUSTOMER}}, 20),
        # 2 slots for the whole queue, shared round-robin between the customers (the
        # partitioned rate limit is far from binding; it only keys the jobs).
        (
            {
                "global_limit": 2,
                "rate_limit": {"allowed": 1_000_000, "period": 60, "partition": BY_CUSTOMER},
            },
            20,
        ),
    ],
    ids=["global-per-partition", "global-shared"],
)
async def test_a_small_partition_is_not_starved_by_a_hot_one(
    db_url: str, limits: dict[str, Any], bound: int
) -> None:
    params = {"worker": worker_name(FairJob), "queue": QUEUE}
    async with oban_nodes(db_url, ["fair-a", "fair-b"], {QUEUE: {"limit": 10, **limits}}):
        await query(db_url, INSERT, {**params, "customer": "hot", "n": 10_000})

        async def hot_running() -> bool:
            return await count(db_url, STARTED, {"queue": QUEUE, "customer": "hot"}) >= 50

        await eventually(hot_running, within=20, what="the hot partition runs")
        small_at = (await query(db_url, INSERT, {**params, "customer": "small", "n": 10}))[0]["at"]

        async def small_started() -> bool:
            return await count(db_url, STARTED, {"queue": QUEUE, "customer": "small"}) == 10

        await eventually(small_started, within=20, what="all 10 small-partition jobs started")
    rows = await query(
        db_url,
        "SELECT args ->> 'customer_id' AS customer, attempted_at FROM oban_jobs "
        "WHERE queue = %(queue)s AND attempted_at IS NOT NULL ORDER BY attempted_at, id",
        {"queue": QUEUE},
    )
    last_small = max(r["attempted_at"] for r in rows if r["customer"] == "small")
    hot_between = sum(
        1 for r in rows if r["customer"] == "hot" and small_at <= r["attempted_at"] <= last_small
    )
    hot_left = 10_000 - sum(1 for r in rows if r["customer"] == "hot")
    assert hot_left > 5_000  # the hot partition still had thousands waiting
    assert hot_between <= bound, f"{hot_between} hot starts before the small partition finished"
    print(f"hot starts while the 10 small jobs started: {hot_between} (bound {bound})")
