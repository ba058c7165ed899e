"""set_queue_limits through the one pipeline: preview in words, confirm in one statement,
the audit event, drift, revert to the declaration, and bad input that changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from oban_powertools import Powertools
from oban_powertools.actions import errors
from tests.support.seams import OPERATOR, make_powertools


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        async with powertools.db.connection() as conn:
            for queue in ("exports", "mailers"):
                await conn.execute(
                    "INSERT INTO oban_producers (uuid, name, node, queue, meta, started_at,"
                    " updated_at) VALUES (gen_random_uuid(), 'Oban', 'node-1', %s,"
                    ' \'{"local_limit": 20, "paused": false}\', now(), now())',
                    (queue,),
                )
        yield powertools


async def rows(pt: Powertools, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def declare(pt: Powertools, queue: str, declared: dict[str, Any], **numbers: Any) -> None:
    """A node's declaration, as limits.store.declare writes it."""
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_queue_limits (queue, global_limit, rate_allowed,"
            " rate_period, declared, declared_by, declared_at, global_partitioned,"
            " partition_fields, partition_keys)"
            " VALUES (%(q)s, %(g)s, %(ra)s, %(rp)s, %(d)s, 'node-1', now(), %(gp)s, %(pf)s, %(pk)s)",
            {
                "q": queue,
                "g": numbers.get("global_limit"),
                "ra": numbers.get("rate_allowed"),
                "rp": numbers.get("rate_period"),
                "d": Jsonb(declared),
                "gp": numbers.get("global_partitioned", False),
                "pf": numbers.get("partition_fields"),
                "pk": numbers.get("partition_keys", []),
            },
        )


async def executing(pt: Powertools, queue: str, n: int) -> None:
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO oban_jobs (state, queue, worker, args, attempt, attempted_at)"
            " SELECT 'executing', %s, 'app.Export', '{}', 1, now() FROM generate_series(1, %s)",
            (queue, n),
        )


async def limits_row(pt: Powertools, queue: str) -> dict[str, Any]:
    (row,) = await rows(pt, "SELECT * FROM powertools_queue_limits WHERE queue = %s", queue)
    return row


async def test_preview_says_the_effect_and_confirm_stores_the_decision(pt: Powertools) -> None:
    await declare(pt, "exports", {"global_limit": 10}, global_limit=10)
    await executing(pt, "exports", 63)
    preview = await pt.pipeline.preview(
        OPERATOR,
        "set_queue_limits",
        "exports",
        {"global_limit": 50, "rate_allowed": 100, "rate_period": 60},
        surface="web",
    )
    assert preview.effect.startswith(
        "Global limit 10 → 50: at most 50 running across all nodes; 63 run now: no new claims "
        "until fewer than 50. Rate limit none → 100 per 60 s: at most 100 starts in any 60 s; "
        "starts are counted from the change on."
    )
    assert "Kept as an operator decision across restarts" in preview.effect
    assert (await limits_row(pt, "exports"))["global_limit"] == 10  # a preview changes nothing

    result = await pt.pipeline.execute(OPERATOR, preview.token, "customer burst", surface="web")

    row = await limits_row(pt, "exports")
    assert (row["global_limit"], row["rate_allowed"], row["rate_period"]) == (50, 100, 60)
    assert (row["decided_by_id"], row["reason"]) == ("ops-demo", "customer burst")
    assert row["decided_at"] is not None and row["version"] == 2
    assert row["declared"] == {"global_limit": 10}  # the code's declaration is kept
    (event,) = await rows(pt, "SELECT * FROM powertools_audit_events")
    assert event["id"] == result.audit_event_id
    assert (event["action"], event["command"]) == ("queue.limits_changed", "set_queue_limits")
    assert (event["resource_type"], event["resource_id"]) == ("queue", "exports")
    assert event["before"]["global_limit"] == 10 and event["after"]["global_limit"] == 50
    assert event["after"]["version"] == 2 and event["reason"] == "customer burst"
    (stored,) = await rows(pt, "SELECT status, audit_event_id FROM powertools_previews")
    assert stored == {"status": "consumed", "audit_event_id": event["id"]}
    assert result.after["exports"]["rate_allowed"] == 100


async def test_rate_words_count_the_current_window(pt: Powertools) -> None:
    await declare(
        pt,
        "exports",
        {"rate_limit": {"allowed": 100, "period": 60}},
        rate_allowed=100,
        rate_period=60,
    )
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_limit_starts (queue, partition_key, bucket_end, starts)"
            " VALUES ('exports', '', extract(epoch FROM now())::bigint + 1, 40)"
        )
    preview = await pt.pipeline.preview(
        OPERATOR, "set_queue_limits", "exports", {"rate_allowed": "30", "rate_period": "60"}
    )
    assert (
        "Rate limit 100 per 60 s → 30 per 60 s: at most 30 starts in any 60 s; 40 in the "
        "current window: no new starts until the window moves on (the oldest leaves it at "
    ) in preview.effect
    assert "Global limit none → none: no limit across nodes" in preview.effect


async def test_partitioned_limit_keeps_its_partition(pt: Powertools) -> None:
    declared = {"global_limit": {"allowed": 1, "partition": {"fields": ["args"], "keys": ["c"]}}}
    await declare(
        pt,
        "exports",
        declared,
        global_limit=1,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["c"],
    )
    async with pt.db.connection() as conn:
        await conn.execute(
            # The database keys each job by its args.c (one partition per customer).
            "INSERT INTO oban_jobs (state, queue, worker, args, attempt, attempted_at)"
            " SELECT 'executing', 'exports', 'app.Export', jsonb_build_object('c', g), 1, now()"
            " FROM generate_series(1, 3) g"
        )
    result = await pt.operator.set_queue_limits(
        OPERATOR, "exports", global_limit=2, reason="two per customer now"
    )
    effect = result.preview.effect
    assert (
        "at most 2 running per partition (args.c) across all nodes; 3 partitions at the "
        "current limit of 1" in effect
    )
    assert "The partition (per args.c) follows the code and does not change" in effect
    row = await limits_row(pt, "exports")
    assert row["global_limit"] == 2 and row["global_partitioned"] is True
    assert row["partition_fields"] == ["args"]


async def test_a_queue_without_limits_gets_a_row(pt: Powertools) -> None:
    assert await rows(pt, "SELECT * FROM powertools_queue_limits") == []
    result = await pt.operator.set_queue_limits(
        OPERATOR, "mailers", global_limit=3, reason="smtp provider limit"
    )
    row = await limits_row(pt, "mailers")
    assert row["global_limit"] == 3 and row["declared"] == {} and row["version"] == 1
    assert row["decided_by_label"] == "Ops Demo"
    (event,) = await rows(pt, "SELECT before, after FROM powertools_audit_events")
    assert event["before"]["version"] == 0 and event["after"]["global_limit"] == 3
    assert result.preview.before["mailers"]["version"] == 0


async def test_revert_returns_to_the_declaration(pt: Powertools) -> None:
    await declare(
        pt,
        "exports",
        {"global_limit": 5, "rate_limit": {"allowed": 10, "period": 1}},
        global_limit=5,
        rate_allowed=10,
        rate_period=1,
    )
    with pytest.raises(errors.NotApplicable, match="already follow the code's declaration"):
        await pt.operator.set_queue_limits(OPERATOR, "exports", revert=True, reason="nothing")
    await pt.operator.set_queue_limits(OPERATOR, "exports", global_limit=2, reason="slow db")
    row = await limits_row(pt, "exports")
    assert (row["global_limit"], row["rate_allowed"]) == (2, None)

    result = await pt.operator.set_queue_limits(
        OPERATOR, "exports", revert=True, reason="db is fine again"
    )

    assert "declared by node node-1" in result.preview.effect
    assert "Global limit 2 → 5" in result.preview.effect
    row = await limits_row(pt, "exports")
    assert (row["global_limit"], row["rate_allowed"], row["rate_period"]) == (5, 10, 1)
    assert row["decided_at"] is None and row["decided_by_id"] is None and row["reason"] is None
    actions = [r["action"] for r in await rows(pt, "SELECT action FROM powertools_audit_events")]
    assert actions == ["queue.limits_changed", "queue.limits_changed"]


async def test_drift_changes_nothing(pt: Powertools) -> None:
    await declare(pt, "exports", {"global_limit": 10}, global_limit=10)
    preview = await pt.pipeline.preview(
        OPERATOR, "set_queue_limits", "exports", {"global_limit": 4}
    )
    # A node declares again meanwhile (a deploy): the row's version moves.
    async with pt.db.connection() as conn:
        await conn.execute(
            "UPDATE powertools_queue_limits SET global_limit = 12, version = version + 1"
        )
    with pytest.raises(errors.PreviewDrifted):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    row = await limits_row(pt, "exports")
    assert row["global_limit"] == 12 and row["decided_at"] is None
    assert await rows(pt, "SELECT * FROM powertools_audit_events") == []
    (stored,) = await rows(pt, "SELECT status FROM powertools_previews")
    assert stored["status"] == "drifted"


async def test_a_node_declaring_a_new_queue_meanwhile_is_drift(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(
        OPERATOR, "set_queue_limits", "mailers", {"global_limit": 4}
    )
    await declare(pt, "mailers", {"global_limit": 9}, global_limit=9)
    with pytest.raises(errors.PreviewDrifted):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    assert (await limits_row(pt, "mailers"))["global_limit"] == 9


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"global_limit": 0}, errors.InvalidParams, "global_limit must be between 1"),
        ({"global_limit": -3}, errors.InvalidParams, "global_limit must be between 1"),
        ({"global_limit": "ten"}, errors.InvalidParams, "global_limit must be a whole number"),
        ({"global_limit": 2.5}, errors.InvalidParams, "global_limit must be a whole number"),
        ({"global_limit": True}, errors.InvalidParams, "global_limit must be a whole number"),
        ({"rate_allowed": 100}, errors.InvalidParams, "rate_allowed and rate_period go together"),
        ({"rate_period": 60}, errors.InvalidParams, "rate_allowed and rate_period go together"),
        ({"rate_allowed": 1, "rate_period": 0}, errors.InvalidParams, "rate_period must be"),
        ({"partition": "worker"}, errors.InvalidParams, "not partition"),
        ({"revert": True, "global_limit": 3}, errors.InvalidParams, "takes no numbers"),
        ({"revert": "maybe"}, errors.InvalidParams, "revert must be true or false"),
    ],
)
async def test_bad_input_changes_nothing(
    pt: Powertools, params: dict[str, Any], error: type[Exception], message: str
) -> None:
    await declare(pt, "exports", {"global_limit": 10}, global_limit=10)
    with pytest.raises(error, match=message):
        await pt.pipeline.preview(OPERATOR, "set_queue_limits", "exports", params)
    assert (await limits_row(pt, "exports"))["global_limit"] == 10
    assert await rows(pt, "SELECT * FROM powertools_previews") == []
    assert await rows(pt, "SELECT * FROM powertools_audit_events") == []


async def test_unknown_queue_and_unchanged_limits_are_refused(pt: Powertools) -> None:
    with pytest.raises(errors.UnknownTarget):
        await pt.operator.set_queue_limits(OPERATOR, "no_such_queue", global_limit=1, reason="x")
    with pytest.raises(errors.InvalidTargets):
        await pt.operator.set_queue_limits(OPERATOR, "bad name!", global_limit=1, reason="x")
    await pt.operator.set_queue_limits(OPERATOR, "mailers", global_limit=3, reason="first")
    with pytest.raises(errors.NotApplicable, match="already has these limits"):
        await pt.operator.set_queue_limits(OPERATOR, "mailers", global_limit=3, reason="again")
    with pytest.raises(errors.ReasonRequired):
        await pt.operator.set_queue_limits(OPERATOR, "mailers", global_limit=4, reason="")
    assert (await limits_row(pt, "mailers"))["global_limit"] == 3
    assert len(await rows(pt, "SELECT * FROM powertools_audit_events")) == 1
