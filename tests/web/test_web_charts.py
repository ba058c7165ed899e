"""The charts on the overview and a queue's page: throughput, failures and queue wait over
the last hour or day, read from the job rollup only (accessible SVG, a table alternative,
an hour/day toggle as plain links)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.read_models import rollups
from oban_powertools.runtime.rollup import JobRollup
from tests.support.rollups import MINUTE, failure, floor_minute, put_job
from tests.web.helpers import MOUNT, visible_text

Client = Callable[..., httpx.AsyncClient]
S = timedelta(seconds=1)
ROLLUP_TABLES = {"powertools_job_rollups", "powertools_job_rollup_progress"}


class Leader:
    is_leader = True


async def seed(conn: psycopg.AsyncConnection[Any], at: datetime) -> None:
    """In the minute of ``at``: 4 jobs of "mail" completed and one errored and waits to
    retry (each attempt waited 3 s), one discarded; 2 jobs of "default" completed."""
    for _ in range(4):
        await put_job(conn, "completed", queue="mail", scheduled=at, attempted=at + 3 * S,
                      ended=at + 4 * S)  # fmt: skip
    await put_job(conn, "discarded", queue="mail", ended=at + 5 * S, attempt=20,
                  errors=[failure(20, at + 5 * S)])  # fmt: skip
    await put_job(conn, "retryable", queue="mail", scheduled=at + 2 * S, attempted=at + 5 * S,
                  errors=[failure(1, at + 6 * S)])  # fmt: skip
    for _ in range(2):
        await put_job(conn, "completed", queue="default", ended=at + 7 * S)


async def roll_up(powertools: Powertools) -> None:
    await powertools.start()
    await JobRollup(powertools.db, leader=Leader(), node="web-test").run_pass()


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b[^>]*>.*?</svg>", html, re.DOTALL)


def five_minutes_ago() -> datetime:
    return floor_minute(datetime.now(UTC)) - 5 * MINUTE + 10 * S


async def test_the_overview_draws_the_last_hour_from_the_rollup(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    at = five_minutes_ago()
    await seed(conn, at)
    await roll_up(powertools)
    # The charts read the rollup, not oban_jobs: with the jobs gone, the page still shows them.
    await conn.execute("DELETE FROM oban_jobs")
    now = floor_minute(datetime.now(UTC))  # before the request: still in its window then
    html = (await as_user("ops-demo").get(f"{MOUNT}/")).text
    completed, failed, wait = svgs(html)
    for svg, series in ((completed, "completed"), (failed, "failed"), (wait, "wait")):
        assert 'role="img"' in svg
        assert f'aria-labelledby="chart-{series}-title chart-{series}-desc"' in svg
    assert '<title id="chart-completed-title">Completed jobs per minute, last hour</title>' in (
        completed
    )
    assert f"6 jobs completed in the last hour; the busiest minute, {at:%H:%M} UTC, had 6." in (
        completed
    )
    assert "2 failures in the last hour: 1 discarded, 1 errored and retried" in failed
    assert failed.count('<rect class="bar-discarded"') == 1
    assert failed.count('<rect class="bar-retryable"') == 1
    assert "5 attempts started in the last hour, waiting 3.0 s on average" in wait
    assert f"<title>{at:%H:%M} UTC: 3.0 s mean wait</title>" in wait
    # The same numbers as a table, with headers, for anyone who cannot see the charts.
    table = html.split("The last hour minute by minute (table)", 1)[1].split("</table>", 1)[0]
    assert '<th scope="col" class="r">Mean wait</th>' in table
    assert table.count('<th scope="row">') == 60
    row = re.search(rf"{at:%H:%M}</time></th>(.*?)</tr>", table)
    assert row is not None and visible_text(row.group(1)) == "6 1 1 0 5 3.0 s 3.0 s"
    # The current minute is not rolled up yet, and says so rather than showing zero.
    assert re.search(rf"{now:%H:%M}</time> \(not yet rolled up\)", table)
    assert "written through" in html and "by web-test" in html
    # The toggle is a plain link to the day view.
    assert f'href="{MOUNT}/?window=day">Last day</a>' in html
    assert '<span aria-current="true" class="current">Last hour</span>' in html


async def test_the_day_view_sums_the_minutes_per_hour(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    at = five_minutes_ago()
    await seed(conn, at)
    await roll_up(powertools)
    # An older minute, as the rollup wrote it three hours ago.
    three = floor_minute(datetime.now(UTC)) - timedelta(hours=3)
    await conn.execute(
        "INSERT INTO powertools_job_rollups (minute, queue, completed, wait_count, wait_ms_sum, "
        "wait_ms_max) VALUES (%s, 'mail', 5, 2, 1000, 800)",
        (three.replace(tzinfo=None),),
    )
    html = (await as_user("ops-demo").get(f"{MOUNT}/?window=day")).text
    completed, _failed, wait = svgs(html)
    assert "Completed jobs per hour, last day" in completed
    assert "11 jobs completed in the last day" in completed
    assert "7 attempts started in the last day" in wait
    table = html.split("The last day hour by hour (table)", 1)[1].split("</table>", 1)[0]
    assert table.count('<th scope="row">') == 24
    hour = three.replace(minute=0)
    row = re.search(rf"{hour:%H:%M}</time></th>(.*?)</tr>", table)
    assert row is not None and visible_text(row.group(1)) == "5 0 0 0 2 500 ms 800 ms"
    assert f'href="{MOUNT}/">Last hour</a>' in html
    # The live region polls the same view.
    assert f'hx-get="{MOUNT}/?window=day"' in html


async def test_a_queue_page_shows_only_that_queue(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    at = five_minutes_ago()
    await seed(conn, at)
    await roll_up(powertools)
    client = as_user("ops-demo")
    html = (await client.get(f"{MOUNT}/queues/mail")).text
    completed, failed, _wait = svgs(html)
    assert "4 jobs completed in the last hour" in completed
    assert "2 failures in the last hour" in failed
    assert f'href="{MOUNT}/queues/mail?window=day">Last day</a>' in html
    day = (await client.get(f"{MOUNT}/queues/mail?window=day")).text
    assert "4 jobs completed in the last day" in svgs(day)[0]
    other = (await client.get(f"{MOUNT}/queues/default")).text
    assert "2 jobs completed in the last hour" in svgs(other)[0]
    # A name with no queue and no rolled-up minute is not a page.
    assert (await client.get(f"{MOUNT}/queues/nothing-here")).status_code == 404


async def test_before_the_first_pass_the_charts_say_so(
    powertools: Powertools, as_user: Client
) -> None:
    await powertools.start()
    async with powertools.db.connection() as c:
        hour = await rollups.activity(c)
    assert hour.written_through is None and all(b.pending for b in hour.buckets)
    html = (await as_user("ops-demo").get(f"{MOUNT}/")).text
    assert "not written yet: the leader of an oban instance running the Powertools runtime" in (
        html
    )
    assert len(svgs(html)) == 3


async def test_the_chart_statements_read_only_the_rollup_tables(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    """What the charts run, planned by Postgres: no relation but the rollup's own."""
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    for statement in (rollups.Q.minutes, rollups.Q.hours, rollups.Q.progress):
        for queue in (None, "mail"):
            cur = await conn.execute(
                f"EXPLAIN (FORMAT JSON) {statement}",  # type: ignore[arg-type]
                {"since": since, "queue": queue},
            )
            row = await cur.fetchone()
            assert row is not None
            plan = row["QUERY PLAN"]
            found = set(re.findall(r'"Relation Name": "([^"]+)"', json.dumps(plan)))
            assert found and found <= ROLLUP_TABLES, (statement, found)
