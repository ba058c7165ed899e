"""The overview at a glance: failures grouped by cause, counts by state and queue. (Its
charts, read from the job rollup: test_web_charts.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models import overview as overview_model
from oban_powertools.read_models.common import HOST, NATIVE
from tests.web.helpers import (
    MOUNT,
    RedactingDisplay,
    insert_job,
    insert_producer,
    visible_text,
)

Client = Callable[..., httpx.AsyncClient]
DISPLAY = Display(RedactingDisplay())
TIMEOUT = "Traceback (most recent call last):\n  File 'app.py'\nTimeoutError: upstream timed out"


def error(text: str) -> list[dict[str, Any]]:
    return [{"attempt": 1, "at": "2025-01-01T00:00:00Z", "error": text}]


async def seed_failures(conn: psycopg.AsyncConnection[Any]) -> None:
    """Three workers time out against the same upstream; one fails for its own reason."""
    for worker in ("app.SyncOrders", "app.SyncInvoices", "app.SyncRefunds"):
        await insert_job(conn, state="retryable", worker=worker, attempt=1, errors=error(TIMEOUT))
    await insert_job(
        conn, state="discarded", worker="app.SyncOrders", attempt=20, errors=error(TIMEOUT)
    )
    await insert_job(
        conn,
        state="retryable",
        worker="app.SendEmail",
        attempt=1,
        errors=error("x\nSMTPError: 550 mailbox unavailable"),
    )


async def test_failures_that_share_a_cause_are_one_item(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_failures(conn)
    await powertools.start()
    data = await overview_model.overview(powertools.db, DISPLAY)
    failing = [i for i in data.attention if i.kind == "failing_worker"]
    assert len(failing) == 2  # two causes, not four workers

    shared = next(i for i in failing if i.affected)
    assert shared.title == "3 workers are failing with TimeoutError"
    assert shared.severity == "critical"  # one of them discarded a job
    assert "3 retryable and 1 discarded in the last 24 hours across 3 workers" in shared.why
    assert shared.why.endswith("TimeoutError: upstream timed out")
    assert {w.worker for w in shared.affected} == {
        "app.SyncOrders",
        "app.SyncInvoices",
        "app.SyncRefunds",
    }
    orders = next(w for w in shared.affected if w.worker == "app.SyncOrders")
    assert (orders.retryable, orders.discarded) == (1, 1)
    # The next paths once for the group, each with its owner.
    assert [p.ownership for p in shared.next] == [NATIVE, NATIVE, HOST]
    assert shared.next[2].label == "Fix the dependency these workers share"

    single = next(i for i in failing if not i.affected)
    assert single.title == "Worker app.SendEmail is failing"
    assert single.why.endswith("SMTPError: 550 mailbox unavailable")
    assert single.severity == "warning"


async def test_the_page_lists_the_group_once_with_its_workers(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_failures(conn)
    html = (await as_user("ops-demo").get(f"{MOUNT}/")).text
    text = visible_text(html)
    assert text.count("3 workers are failing with TimeoutError") == 1
    assert "Worker app.SyncOrders is failing" not in text
    # Next paths: once per cause (two causes), not once per worker (four).
    assert text.count("Evidence for the latest failure") == 2
    # No node runs the runtime in this database, which is one more host-owned item.
    assert "No node runs the Powertools runtime" in text
    assert text.count("host-owned follow-up") == 2 + 1
    assert "Workers affected" in text
    table = html.split("Workers affected", 1)[1].split("</table>", 1)[0]
    for worker in ("app.SyncOrders", "app.SyncInvoices", "app.SyncRefunds"):
        assert f'href="{MOUNT}/jobs?worker={worker}&amp;state=retryable">{worker}</a>' in table


async def test_the_page_leads_with_counts_by_state_and_queue(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await insert_producer(conn, queue="mailers", node="web-1")
    await insert_producer(conn, queue="default", node="web-1")
    for _ in range(3):
        await insert_job(conn, queue="mailers")
    await insert_job(conn, queue="mailers", state="retryable", attempt=1)
    await insert_job(conn, queue="default")
    html = (await as_user("ops-demo").get(f"{MOUNT}/")).text
    glance_part, _, rest = html.partition('id="attention-title"')
    assert rest, "the at-a-glance section comes before what needs attention"

    tiles = visible_text(glance_part.split('aria-label="Jobs by state"', 1)[1].split("</ul>")[0])
    assert "4 available" in tiles and "1 retryable" in tiles and "0 executing" in tiles

    queues = glance_part.split('id="by-queue-title"', 1)[1]
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</tr>", queues, re.DOTALL)
    shown = [visible_text(r) for r in rows]
    # Busiest first, available / executing / retryable.
    assert shown == ["mailers 3 0 1", "default 1 0 0"]
    assert f'href="{MOUNT}/jobs?queue=mailers&amp;state=available">3</a>' in queues


async def test_jobs_stuck_on_one_dead_node_are_one_item(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    dead = ["gone-node", "00000000-0000-0000-0000-000000000009"]
    for minutes in (50, 20, 10):
        await insert_job(
            conn,
            state="executing",
            attempt=1,
            attempted_by=dead,
            attempted_ago=timedelta(minutes=minutes),
        )
    live = await insert_producer(conn, queue="default", node="worker-1")
    slow = await insert_job(
        conn,
        state="executing",
        attempt=1,
        attempted_by=["worker-1", live],
        attempted_ago=timedelta(hours=1),
    )
    await powertools.start()
    data = await overview_model.overview(powertools.db, DISPLAY)
    (node,) = [i for i in data.attention if i.kind == "stuck_jobs"]
    assert node.title == "3 jobs are orphaned on gone-node"
    assert node.severity == "critical" and node.subject is None
    assert "The longest has run for 50 minutes." in node.why
    assert [p.ownership for p in node.next] == [NATIVE, HOST]
    (single,) = [i for i in data.attention if i.kind == "stuck_job"]
    assert single.title == f"Job {slow} (app.SendEmail) looks stuck"
    assert len(data.stuck) == 4  # the table below still lists every job
