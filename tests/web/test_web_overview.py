"""The overview at a glance: failures grouped by cause, counts by state and queue, and the
last hour minute by minute (an accessible inline SVG with a table alternative)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models import glance
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


async def finish(
    conn: psycopg.AsyncConnection[Any], state: str, column: str, at: datetime, n: int
) -> None:
    for _ in range(n):
        job = await insert_job(conn, state=state, attempt=1)
        await conn.execute(
            f"UPDATE oban_jobs SET {column} = %s WHERE id = %s",
            (at.replace(tzinfo=None), job),
        )


def minute_ago(minutes: int) -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes) + timedelta(seconds=10)


async def test_last_hour_counts_each_minute_from_the_time_indexes(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await finish(conn, "completed", "completed_at", minute_ago(5), 4)
    await finish(conn, "completed", "completed_at", minute_ago(30), 2)
    await finish(conn, "completed", "completed_at", minute_ago(75), 9)  # outside the hour
    await finish(conn, "discarded", "discarded_at", minute_ago(5), 1)
    await finish(conn, "retryable", "attempted_at", minute_ago(30), 3)
    await powertools.start()
    async with powertools.db.connection() as c:
        hour = await glance.last_hour(c)
    assert len(hour.minutes) == 60
    by_minute = {m.at: m for m in hour.minutes}
    five = by_minute[minute_ago(5).replace(second=0)]
    thirty = by_minute[minute_ago(30).replace(second=0)]
    assert (five.completed.value, five.discarded.value, five.retryable.value) == (4, 1, 0)
    assert (thirty.completed.value, thirty.failed.value) == (2, 3)
    assert str(hour.total("completed")) == "6"
    assert str(hour.total("failed")) == "4"
    assert hour.minutes[-1].partial and not hour.minutes[0].partial


async def test_a_busy_minute_reads_only_the_cap_and_is_labelled_an_estimate(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    # 12 jobs in the minute's first 30 seconds, then nothing: the first 4 (the cap) span
    # 10 seconds, so the minute is extrapolated to about 4 * 60 / 10 = 24.
    for i in range(12):
        await finish(conn, "completed", "completed_at", start + timedelta(seconds=2.5 * (i + 1)), 1)
    await powertools.start()
    async with powertools.db.connection() as c:
        hour = await glance.last_hour(c, cap=4)
    (busy,) = [m for m in hour.minutes if m.completed.value]
    assert busy.completed.kind == "estimate" and busy.completed.value == 24
    assert str(hour.total("completed")) == "~24" and hour.estimated


async def test_the_chart_is_an_accessible_svg_with_a_table_alternative(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    at = minute_ago(5)
    await finish(conn, "completed", "completed_at", at, 4)
    await finish(conn, "discarded", "discarded_at", at, 1)
    html = (await as_user("ops-demo").get(f"{MOUNT}/")).text
    svgs = re.findall(r"<svg\b[^>]*>.*?</svg>", html, re.DOTALL)
    assert len(svgs) == 2
    completed, failed = svgs
    assert 'role="img"' in completed
    assert 'aria-labelledby="chart-completed-title chart-completed-desc"' in completed
    assert '<title id="chart-completed-title">Completed jobs per minute, last hour</title>' in (
        completed
    )
    assert f"4 jobs completed in the last hour; the busiest minute, {at:%H:%M} UTC, had 4." in (
        completed
    )
    assert "1 failures in the last hour: 1 discarded, 0 now waiting to retry" in failed
    assert completed.count('<rect class="bar-completed"') == 1
    assert failed.count('<rect class="bar-discarded"') == 1
    assert f"<title>{at:%H:%M} UTC: 4 completed</title>" in completed
    # The same numbers as a table, with headers, for anyone who cannot see the chart.
    table = html.split("The last hour minute by minute (table)", 1)[1].split("</table>", 1)[0]
    assert '<th scope="col" class="r">Completed</th>' in table
    assert table.count('<th scope="row">') == 60
    row = re.search(rf"{at:%H:%M}</time></th>(.*?)</tr>", table)
    assert row is not None and visible_text(row.group(1)) == "4 1 0"


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
