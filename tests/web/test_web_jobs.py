"""Jobs: filters, keyset pages, bounded counts, details, single and bulk actions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models import jobs as jobs_model
from tests.web.helpers import (
    MOUNT,
    TRACEBACK,
    RedactingDisplay,
    csrf_of,
    insert_job,
    scalar,
    token_of,
)

Client = Callable[..., httpx.AsyncClient]


def job_links(html: str) -> list[int]:
    return [int(i) for i in re.findall(rf'href="{MOUNT}/jobs/(\d+)" class="strong"', html)]


async def test_filters_and_keyset_pages(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    ids = [await insert_job(conn, worker="app.Bulk", tags=["batch"]) for _ in range(55)]
    other = await insert_job(conn, state="scheduled", worker="app.Other", queue="mailers")
    ops = as_user("ops-demo")

    first = await ops.get(f"{MOUNT}/jobs", params={"worker": "app.Bulk"})
    assert '<span class="num">55</span> jobs match' in first.text
    assert job_links(first.text) == sorted(ids, reverse=True)[:50]
    older = re.search(r'href="([^"]+before=\d+[^"]*)" rel="next"', first.text)
    assert older is not None
    second = await ops.get(older.group(1).replace("&amp;", "&"))
    assert job_links(second.text) == sorted(ids, reverse=True)[50:]
    assert 'rel="next"' not in second.text

    by_state = await ops.get(f"{MOUNT}/jobs", params={"state": "scheduled"})
    assert job_links(by_state.text) == [other]
    by_queue = await ops.get(f"{MOUNT}/jobs", params={"queue": "mailers"})
    assert job_links(by_queue.text) == [other]
    by_tag = await ops.get(f"{MOUNT}/jobs", params={"tag": "BATCH"})
    assert len(job_links(by_tag.text)) == 50
    bad = await ops.get(f"{MOUNT}/jobs", params={"state": "exploded"})
    assert bad.status_code == 400
    assert "unknown job state" in bad.text


async def test_counts_are_bounded(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await conn.execute(
        "INSERT INTO oban_jobs (worker, args) SELECT 'app.Many', '{}' FROM generate_series(1, 30)"
    )
    await powertools.start()
    display = Display(RedactingDisplay())
    listing = await jobs_model.list_jobs(powertools.db, display, jobs_model.JobFilters())
    assert str(listing.count) == "30"
    original = jobs_model.COUNT_CAP
    try:
        jobs_model.COUNT_CAP = 10
        capped = await jobs_model.list_jobs(
            powertools.db, display, jobs_model.JobFilters(worker="app.Many")
        )
    finally:
        jobs_model.COUNT_CAP = original
    assert capped.count is not None
    assert capped.count.kind == "at_least"
    assert str(capped.count) == "10+"


async def test_job_detail_shows_errors_and_timeline(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await insert_job(
        conn,
        state="retryable",
        args={"to": "ana@example.com"},
        errors=[
            {"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": "boom\nValueError: first"},
            {"attempt": 2, "at": "2025-01-01T00:05:00+00:00", "error": TRACEBACK},
        ],
        attempt=2,
    )
    ops = as_user("ops-demo")
    page = await ops.get(f"{MOUNT}/jobs/{job}")
    assert page.status_code == 200
    text = page.text
    assert "ana@example.com" in text
    assert "ValueError: first" in text
    assert "Traceback (most recent call last)" in text
    assert "attempt 2 failed" in text  # the timeline
    assert ">complete<" in text  # every failed attempt left its error
    assert ">Retry job</button>" in text
    assert ">Cancel job</button>" in text
    assert ">Discard job</button>" in text


async def test_bulk_retry_previews_the_exact_set(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    discarded = [
        await insert_job(conn, state="discarded", worker="app.Flaky", attempt=20) for _ in range(3)
    ]
    ops = as_user("ops-demo")
    listing = await ops.get(f"{MOUNT}/jobs", params={"state": "discarded"})
    csrf = csrf_of(listing.text)
    chosen = discarded[:2]
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf,
            "action": "retry_job",
            "target": [str(i) for i in chosen],
            "return_to": "/jobs?state=discarded",
        },
    )
    assert preview.status_code == 200
    assert "Exactly these 2 targets" in preview.text
    listed = [int(i) for i in re.findall(r"<li><code>(\d+)</code></li>", preview.text)]
    assert listed == chosen
    assert "job:bulk:2" in preview.text

    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(preview.text), "reason": "upstream fixed"},
    )
    assert done.status_code == 303
    states = await (
        await conn.execute(
            "SELECT id, state::text AS state FROM oban_jobs WHERE id = ANY(%(ids)s) ORDER BY id",
            {"ids": discarded},
        )
    ).fetchall()
    assert [r["state"] for r in states] == ["available", "available", "discarded"]

    # The job's audit trail finds the bulk event that named it.
    audit = await ops.get(
        f"{MOUNT}/audit", params={"resource_type": "job", "resource_id": str(chosen[0])}
    )
    assert "job.retried" in audit.text
    assert "upstream fixed" in audit.text
    untouched = await ops.get(
        f"{MOUNT}/audit", params={"resource_type": "job", "resource_id": str(discarded[2])}
    )
    assert "No audit event matches" in untouched.text


async def test_action_that_does_not_apply_is_refused(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await insert_job(conn, state="completed")
    ops = as_user("ops-demo")
    page = await ops.get(f"{MOUNT}/jobs/{job}")
    assert ">Cancel job</button>" not in page.text  # only actions that apply are offered
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf_of(page.text), "action": "cancel_job", "target": str(job)},
    )
    assert preview.status_code == 409
    assert "A completed job cannot be cancelled" in preview.text
    assert await scalar(conn, "SELECT count(*) FROM powertools_previews") == 0
