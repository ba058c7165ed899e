"""Queue limiters on the pages: each limiter's use on the Queues page, Change limits through
preview → reason → confirm on the page and the JSON API, saturated limiters on the overview."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models import overview as overview_model
from oban_powertools.read_models.common import HOST, NATIVE
from tests.web.helpers import (
    MOUNT,
    RedactingDisplay,
    csrf_of,
    insert_job,
    insert_producer,
    scalar,
    token_of,
    visible_text,
)

Client = Callable[..., httpx.AsyncClient]
DISPLAY = Display(RedactingDisplay())


async def declare(conn: Any, queue: str, declared: dict[str, Any], **columns: Any) -> None:
    """A node's declaration, as limits.store.declare stores it."""
    await conn.execute(
        "INSERT INTO powertools_queue_limits (queue, global_limit, global_partitioned,"
        " rate_allowed, rate_period, rate_partitioned, partition_fields, partition_keys,"
        " declared, declared_by, declared_at)"
        " VALUES (%(q)s, %(g)s, %(gp)s, %(ra)s, %(rp)s, %(rpart)s, %(pf)s, %(pk)s, %(d)s,"
        " 'worker-1', now())",
        {
            "q": queue,
            "g": columns.get("global_limit"),
            "gp": columns.get("global_partitioned", False),
            "ra": columns.get("rate_allowed"),
            "rp": columns.get("rate_period"),
            "rpart": columns.get("rate_partitioned", False),
            "pf": columns.get("partition_fields"),
            "pk": columns.get("partition_keys", []),
            "d": Jsonb(declared),
        },
    )


async def seed(conn: Any) -> None:
    """exports: global limit 3 with 3 running (full) and a rate with 40 of 100 started;
    tenants: one per customer, two customers at it; mailers: no limits."""
    for queue in ("exports", "tenants", "mailers"):
        await insert_producer(conn, queue=queue, node="worker-1", limit=10)
    await declare(
        conn,
        "exports",
        {"global_limit": 3, "rate_limit": {"allowed": 100, "period": 60}},
        global_limit=3,
        rate_allowed=100,
        rate_period=60,
    )
    await conn.execute(
        "INSERT INTO powertools_limit_starts (queue, partition_key, bucket_end, starts)"
        " VALUES ('exports', '', extract(epoch FROM now())::bigint + 1, 40)"
    )
    for _ in range(3):
        await insert_job(conn, queue="exports", state="executing", attempt=1)
    partition = {"fields": ["args"], "keys": ["customer_id"]}
    await declare(
        conn,
        "tenants",
        {"global_limit": {"allowed": 1, "partition": partition}},
        global_limit=1,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["customer_id"],
    )
    for customer in (1, 2):
        await insert_job(
            conn, queue="tenants", state="executing", attempt=1, args={"customer_id": customer}
        )


async def test_queues_page_shows_each_limiters_use_and_source(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed(conn)
    page = await as_user("ops-demo").get(f"{MOUNT}/queues")
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "running 3 / global 3" in text
    assert "starts 40 / 100 per 60 s, window resets " in text
    assert "2 partitions at their limit of 1 (running 2 in all)" in text
    assert "per args.customer_id" in text
    assert text.count("declared by node worker-1") == 2
    assert text.count("saturated") == 2  # exports (global full) and tenants (partitions)
    assert "global limit full (3 of 3 running)" in text
    assert text.count("Change limits") == 3  # mailers too: any queue can get limits
    assert "The partition (per args.customer_id) follows the code" in text
    # The form is prefilled with the numbers that apply now.
    assert 'name="param.global_limit" min="1" max="1000000" inputmode="numeric" ' in page.text
    assert 'class="narrow" value="3"' in page.text and 'class="narrow" value="100"' in page.text
    # A viewer sees the use, not the form.
    viewer = await as_user("ops-viewer").get(f"{MOUNT}/queues")
    assert "running 3 / global 3" in visible_text(viewer.text)
    assert "Change limits" not in viewer.text


async def test_change_limits_through_the_page_then_return_to_the_declaration(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed(conn)
    ops = as_user("ops-demo")
    csrf = csrf_of((await ops.get(f"{MOUNT}/queues")).text)
    form = {
        "csrf_token": csrf,
        "action": "set_queue_limits",
        "target": "exports",
        "return_to": "/queues",
        "param.global_limit": "2",
        "param.rate_allowed": "",  # emptied: the rate limit is removed
        "param.rate_period": "",
    }
    preview = await ops.post(f"{MOUNT}/actions/preview", data=form)
    assert preview.status_code == 200, preview.text
    shown = visible_text(preview.text)
    assert (
        "Global limit 3 → 2: at most 2 running across all nodes; 3 run now: no new claims "
        "until fewer than 2" in shown
    )
    assert "Rate limit 100 per 60 s → none: no limit on job starts" in shown
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(preview.text), "reason": "db under load"},
    )
    assert done.status_code == 303
    row = await scalar(
        conn,
        "SELECT jsonb_build_object('g', global_limit, 'r', rate_allowed, 'by', decided_by_id)"
        " FROM powertools_queue_limits WHERE queue = 'exports'",
    )
    assert row == {"g": 2, "r": None, "by": "ops-demo"}
    action = await scalar(conn, "SELECT action || ' ' || surface FROM powertools_audit_events")
    assert action == "queue.limits_changed web"
    page = visible_text((await ops.get(f"{MOUNT}/queues")).text)
    assert "running 3 / global 2" in page
    assert "set by Ops Demo (ops-demo) — db under load" in page
    assert "Return to the code's declaration" in page

    revert = await ops.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf,
            "action": "set_queue_limits",
            "target": "exports",
            "param.revert": "true",
        },
    )
    assert "Global limit 2 → 3" in visible_text(revert.text)
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(revert.text), "reason": "load is normal"},
    )
    assert done.status_code == 303
    page = visible_text((await ops.get(f"{MOUNT}/queues")).text)
    assert "running 3 / global 3" in page and "starts 40 / 100 per 60 s" in page
    assert "declared by node worker-1" in page


async def test_bad_limits_from_the_page_and_the_api_change_nothing(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed(conn)
    ops = as_user("ops-demo")
    csrf = csrf_of((await ops.get(f"{MOUNT}/queues")).text)
    bad = await ops.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf,
            "action": "set_queue_limits",
            "target": "exports",
            "param.global_limit": "0",
        },
    )
    assert bad.status_code == 400
    assert "Global_limit must be between 1 and 1000000" in visible_text(bad.text)
    api = await ops.post(
        f"{MOUNT}/api/actions/preview",
        json={"action": "set_queue_limits", "targets": ["exports"], "params": {"rate_allowed": 5}},
    )
    assert api.status_code == 400
    assert api.json()["error"]["code"] == "invalid_params"
    assert "rate_allowed and rate_period go together" in api.json()["error"]["message"]
    unknown = await ops.post(
        f"{MOUNT}/api/actions/preview",
        json={"action": "set_queue_limits", "targets": ["nope"], "params": {"global_limit": 5}},
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_target"
    assert await scalar(conn, "SELECT count(*) FROM powertools_previews") == 0
    assert await scalar(conn, "SELECT count(*) FROM powertools_audit_events") == 0
    assert (
        await scalar(
            conn, "SELECT global_limit FROM powertools_queue_limits WHERE queue = 'exports'"
        )
        == 3
    )


async def test_change_limits_through_the_json_api(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed(conn)
    ops = as_user("ops-demo")
    response = await ops.post(
        f"{MOUNT}/api/actions/preview",
        json={
            "action": "set_queue_limits",
            "targets": ["mailers"],
            "params": {"global_limit": None, "rate_allowed": 100, "rate_period": 60},
        },
    )
    assert response.status_code == 201, response.text
    preview = response.json()
    assert preview["resource"] == "queue:mailers"
    assert "Rate limit none → 100 per 60 s: at most 100 starts in any 60 s" in preview["effect"]
    confirmed = await ops.post(
        f"{MOUNT}/api/actions/confirm", json={"token": preview["token"], "reason": "smtp quota"}
    )
    assert confirmed.status_code == 200, confirmed.text
    row = await scalar(
        conn,
        "SELECT jsonb_build_object('r', rate_allowed, 'p', rate_period, 'd', declared)"
        " FROM powertools_queue_limits WHERE queue = 'mailers'",
    )
    assert row == {"r": 100, "p": 60, "d": {}}
    event = await scalar(
        conn, "SELECT action || ' ' || surface || ' ' || reason FROM powertools_audit_events"
    )
    assert event == "queue.limits_changed api smtp quota"


async def test_overview_lists_saturated_limiters(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed(conn)
    await powertools.start()
    data = await overview_model.overview(powertools.db, DISPLAY)
    held = {a.title: a for a in data.attention if a.kind == "limit_saturated"}
    assert set(held) == {
        "Queue exports is held back by its limits",
        "Queue tenants is held back by its limits",
    }
    exports = held["Queue exports is held back by its limits"]
    assert exports.why.startswith("Global limit full (3 of 3 running).")
    assert "the numbers are declared by node worker-1" in exports.why
    assert exports.next[0].href == "/queues" and exports.next[0].ownership == NATIVE
    assert {p.ownership for p in exports.next} == {NATIVE, HOST}
    assert exports.subject is not None and exports.subject.id == "exports"
    tenants = held["Queue tenants is held back by its limits"]
    assert tenants.why.startswith("2 partitions at the global limit of 1.")
    assert any("queue limiters" in c for c in data.checked)

    page = visible_text((await as_user("ops-demo").get(f"{MOUNT}/")).text)
    assert "Queue exports is held back by its limits" in page
