"""The canonical proof, in a real browser against the example host.

Operator ``ops-demo`` pauses cron entry ``nightly_sync`` on a native page; the scheduler then
claims nothing for it; forensics shows the paused context with ownership-labelled next
paths; the audit page shows the event. Screenshots of every page land in
``artifacts/screenshots`` for review.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from playwright.sync_api import Page, expect
from psycopg.rows import dict_row

from oban_powertools.db import Database
from oban_powertools.runtime.scheduler import CronScheduler
from tests.browser.conftest import LiveHost, login, screenshot
from tests.support.db import run_async

pytestmark = pytest.mark.browser

REASON = "Upstream CRM is down for maintenance until Monday"


def query(host: LiveHost, sql: str, *params: object) -> list[dict[str, object]]:
    with psycopg.connect(host.database_url, row_factory=dict_row) as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


class AlwaysLeader:
    is_leader = True


async def evaluate_next_nightly_minute(host: LiveHost) -> datetime:
    """Run the scheduler's evaluation at the next 02:00 UTC, when nightly_sync is due."""
    now = datetime.now(UTC)
    due = (now + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)
    async with Database(host.database_url) as db:
        scheduler = CronScheduler(db, leader=AlwaysLeader(), node="browser-test")
        await scheduler.evaluate(now=due + timedelta(seconds=5))
    return due


def test_first_operator_session(page: Page, live_host: LiveHost) -> None:
    login(page, live_host, "ops-demo")
    page.goto(live_host.url("/ops/jobs/"))
    expect(page.get_by_role("link", name="Overview")).to_be_visible()
    expect(page.get_by_text("Audited action").first).to_be_visible()
    screenshot(page, "01-overview")

    page.get_by_role("link", name="Cron", exact=True).click()
    expect(page.get_by_role("link", name="nightly_sync")).to_be_visible()
    screenshot(page, "02-cron")
    page.get_by_role("link", name="nightly_sync").click()
    expect(page).to_have_url(live_host.url("/ops/jobs/cron/nightly_sync"))
    screenshot(page, "03-cron-nightly_sync")

    page.get_by_role("button", name="Pause cron entry").click()
    expect(page.get_by_text("cron_entry:nightly_sync").first).to_be_visible()
    expect(page.get_by_text("Future claims stop until resumed").first).to_be_visible()
    screenshot(page, "04-preview")
    page.get_by_label("Reason").fill(REASON)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text(REASON).first).to_be_visible()
    expect(page.get_by_text("cron.paused").first).to_be_visible()
    screenshot(page, "05-result")

    # The database agrees: entry paused, preview consumed, one audit event.
    (entry,) = query(live_host, "SELECT * FROM powertools_cron_entries WHERE name = 'nightly_sync'")
    assert entry["paused"] is True and entry["paused_by_id"] == "ops-demo"
    assert entry["paused_reason"] == REASON
    (preview,) = query(live_host, "SELECT * FROM powertools_previews")
    assert preview["status"] == "consumed"
    (event,) = query(live_host, "SELECT * FROM powertools_audit_events")
    assert (event["action"], event["principal_id"], event["surface"]) == (
        "cron.paused",
        "ops-demo",
        "web",
    )
    assert event["reason"] == REASON and event["preview_token"] == preview["token"]

    # The scheduler really claims nothing for the paused entry; the unpaused entry beside
    # it proves the evaluation ran (hourly_digest is due every hour at :15 Berlin time).
    due = run_async(evaluate_next_nightly_minute(live_host))
    assert (
        query(live_host, "SELECT * FROM powertools_cron_slots WHERE entry_name = 'nightly_sync'")
        == []
    )
    assert (
        query(
            live_host,
            "SELECT id FROM oban_jobs WHERE meta->>'cron_name' = 'nightly_sync' AND meta->>'cron_at' = %s",
            due.isoformat(),
        )
        == []
    )
    coverage = query(
        live_host, "SELECT * FROM powertools_scheduler_coverage WHERE node = 'browser-test'"
    )
    assert coverage and coverage[0]["last_minute"] == due

    # Forensics reflects the post-mutation context, with ownership-labelled next paths.
    page.get_by_role("link", name="Forensics", exact=True).click()
    page.goto(
        live_host.url("/ops/jobs/forensics?resource_type=cron_entry&resource_id=nightly_sync")
    )
    body = page.locator("main")
    expect(body.get_by_text("Paused").first).to_be_visible()
    expect(body.get_by_text(REASON).first).to_be_visible()
    expect(body.get_by_text("Powertools-native").first).to_be_visible()
    expect(body.get_by_text("host-owned follow-up").first).to_be_visible()
    expect(body.get_by_text("Oban Web bridge")).to_have_count(0)  # no bridge configured
    labels = ["complete", "partial evidence", "history unavailable", "unknown"]
    assert any(body.get_by_text(label, exact=True).count() > 0 for label in labels)
    expect(body.get_by_role("link", name="Resume cron entry").first).to_be_visible()
    screenshot(page, "06-forensics-nightly_sync")

    # The audit page shows the event, who and why.
    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_text("cron.paused").first).to_be_visible()
    expect(page.get_by_text("Ops Demo").first).to_be_visible()
    expect(page.get_by_text(REASON).first).to_be_visible()
    screenshot(page, "07-audit")

    for name, path in [("08-queues", "/ops/jobs/queues"), ("09-jobs", "/ops/jobs/jobs")]:
        page.goto(live_host.url(path))
        expect(page.get_by_role("link", name="Overview")).to_be_visible()
        screenshot(page, name)
    page.get_by_role("link", name="Jobs", exact=True).click()
    first_job = page.locator("a[href*='/ops/jobs/jobs/']").first
    first_job.click()
    screenshot(page, "10-job-detail")


def test_viewer_sees_pages_without_mutation_controls(page: Page, live_host: LiveHost) -> None:
    login(page, live_host, "ops-viewer")
    page.goto(live_host.url("/ops/jobs/cron/nightly_sync"))
    expect(page.get_by_role("link", name="Overview")).to_be_visible()
    for name in ("Pause cron entry", "Resume cron entry", "Run now"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    screenshot(page, "11-viewer-cron-detail")
    page.goto(live_host.url("/ops/jobs/"))
    expect(page.get_by_role("link", name="Audit", exact=True)).to_be_visible()


def test_guest_is_forbidden_and_bridge_absent(page: Page, live_host: LiveHost) -> None:
    login(page, live_host, "ops-guest")
    response = page.goto(live_host.url("/ops/jobs/"))
    assert response is not None and response.status == 403
    expect(page.get_by_text("nightly_sync")).to_have_count(0)
    screenshot(page, "12-guest-forbidden")
    # No bridge configured: the route does not exist, whoever asks.
    assert httpx.get(live_host.url("/ops/jobs/oban")).status_code == 404
    login(page, live_host, "ops-demo")
    response = page.goto(live_host.url("/ops/jobs/oban"))
    assert response is not None and response.status == 404
    page.goto(live_host.url("/ops/jobs/"))
    expect(page.get_by_role("link", name="Oban Web")).to_have_count(0)
