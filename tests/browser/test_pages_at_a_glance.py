"""Every page on a phone and a desktop screen: layout, axe-core, keyboard shortcuts.

One signed-in context visits every page at 1360 px and at 390 px (an iPhone 12-14 screen),
and a few in the dark palette: the document never scrolls sideways, job rows fill the first
screen, the preview's Reason field and Confirm button are on screen, and axe-core finds no
serious or critical violation.
Then the keyboard alone walks the navigation and confirms an audited pause.

axe-core is vendored in ``tests/browser/vendor`` (see its README) and injected by
Playwright; the page's CSP stays on, so a CSP problem still fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from psycopg.rows import dict_row

from tests.browser.conftest import LiveHost, login, screenshot
from tests.support.db import run_async
from tests.support.workflow_rows import StepSpec, build

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1360, "height": 900}
BLOCKING = ("serious", "critical")
CONFIRM = ".confirm-form button[type=submit]"


def query(host: LiveHost, sql: str, *params: object) -> list[dict[str, Any]]:
    with psycopg.connect(host.database_url, row_factory=dict_row) as conn:
        return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


def axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, which the page's CSP does not govern;
        # a <script> tag (add_script_tag) would be inline script, refused by that CSP.
        page.evaluate(AXE.read_text() + "\n;undefined")
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    found = []
    for v in results["violations"]:
        if v["impact"] not in BLOCKING:
            continue
        nodes = [
            f"    {' '.join(n['target'])}: {' '.join(n.get('failureSummary', '').split())}"
            for n in v["nodes"][:5]
        ]
        more = f"\n    ... and {len(v['nodes']) - 5} more" if len(v["nodes"]) > 5 else ""
        found.append(
            f"{v['impact']} {v['id']}: {v['help']} ({v['helpUrl']})\n" + "\n".join(nodes) + more
        )
    return found


def layout_problems(page: Page) -> list[str]:
    """What keeps the page from working on the current screen width."""
    problems = []
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll > inner:
        problems.append(f"the document scrolls sideways: {scroll}px wide in a {inner}px window")
    return problems


def audit(page: Page, name: str, findings: dict[str, list[str]]) -> None:
    """Record the page's axe and layout findings under ``name``; take its screenshot."""
    page.wait_for_load_state("networkidle")
    problems = layout_problems(page) + axe_violations(page)
    if problems:
        findings[name] = problems
    screenshot(page, name)


def on_screen(page: Page, selector: str) -> int:
    """How many of the matching elements lie wholly inside the first screen."""
    count: int = page.evaluate(
        """selector => [...document.querySelectorAll(selector)].filter(e => {
            const r = e.getBoundingClientRect();
            return r.height > 0 && r.top >= 0 && r.left >= 0
                && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
        }).length""",
        selector,
    )
    return count


def assert_within_width(page: Page, selector: str) -> None:
    element = page.locator(selector)
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)


def seed_workflow(host: LiveHost) -> str:
    """A running workflow with steps in most states, a fan-out and a long edge."""

    async def write() -> str:
        async with await psycopg.AsyncConnection.connect(
            host.database_url, autocommit=True, row_factory=dict_row
        ) as conn:
            steps = {
                "fetch_invoice": StepSpec(state="completed"),
                "price_lines": StepSpec(("fetch_invoice",), "completed"),
                "render_pdf": StepSpec(("price_lines",), "executing"),
                "check_tax": StepSpec(("price_lines",), "discarded", attempt=3),
                "notify_sales": StepSpec(
                    ("check_tax",),
                    "cancelled",
                    cancelled_by="workflow dependency check_tax discarded",
                ),
                "archive_copy_for_the_auditors": StepSpec(("fetch_invoice",), "available"),
                "mail_customer": StepSpec(("render_pdf", "fetch_invoice")),
            }
            return (await build(conn, "monthly invoice", steps)).id

    return run_async(write())


def test_every_page_on_phone_and_desktop(browser: Browser, live_host: LiveHost) -> None:
    workflow = seed_workflow(live_host)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    login(page, live_host, "ops-demo")
    (job,) = query(
        live_host, "SELECT id FROM oban_jobs WHERE state = 'retryable' ORDER BY id LIMIT 1"
    )
    (queue,) = query(
        live_host, "SELECT coalesce(min(queue), 'default') AS name FROM oban_producers"
    )
    base = "/ops/jobs"
    pages = [
        ("overview", "/"),
        ("overview-day", "/?window=day"),
        ("cron", "/cron"),
        ("cron-detail", "/cron/nightly_sync"),
        ("queues", "/queues"),
        ("queue-charts", f"/queues/{queue['name']}"),
        ("jobs", "/jobs"),
        ("job-detail", f"/jobs/{job['id']}"),
        ("workflows", "/workflows"),
        ("workflow-detail", f"/workflows/{workflow}"),
        ("workflow-forensics", f"/forensics?resource_type=workflow&resource_id={workflow}"),
        ("forensics-pick", "/forensics"),
        ("forensics-bundle", "/forensics?resource_type=cron_entry&resource_id=nightly_sync"),
        ("not-found", "/jobs/999999999"),
        ("chains", "/chains"),
        ("batches", "/batches"),
    ]
    findings: dict[str, list[str]] = {}
    for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        for name, path in pages:
            page.goto(live_host.url(base + path))
            audit(page, f"a11y-{label}-{name}", findings)
            rows = on_screen(page, "main tbody tr")
            if name == "jobs" and rows < 3:
                # The first screen shows several whole job rows, not one cut-off row.
                findings.setdefault(f"a11y-{label}-jobs", []).append(
                    f"only {rows} whole job rows on the first screen"
                )

        # The graph scrolls inside its own box; the page itself never does (checked above).
        page.goto(live_host.url(f"{base}/workflows/{workflow}"))
        expect(page.get_by_role("img", name="Graph of workflow monthly invoice")).to_be_visible()
        assert_within_width(page, ".dag-scroll")
        # The workflow's preview panel lists the exact jobs the cancel touches (the demo's
        # worker may have picked up the available step meanwhile: it knows no app.Step).
        page.get_by_role("button", name="Cancel workflow").click()
        expect(page.get_by_text(re.compile(r"^Exactly these [23] jobs change$"))).to_be_visible()
        audit(page, f"a11y-{label}-workflow-preview-panel", findings)

        # The preview panel htmx puts into a page, and how it looks there.
        page.goto(live_host.url(base + "/queues"))
        page.get_by_role("button", name="Pause queue").first.click()
        expect(page.get_by_label("Reason")).to_be_visible()
        for field in ("#reason", CONFIRM):
            if on_screen(page, field) != 1:
                findings.setdefault(f"a11y-{label}-queues-preview-panel", []).append(
                    f"{field} is not on the screen once the preview is shown"
                )
        audit(page, f"a11y-{label}-queues-preview-panel", findings)

        # The preview as a page of its own (the form posted without htmx), then confirmed.
        page.goto(live_host.url(base + "/cron/hourly_digest"))
        page.locator(".page-tools form.action-form").first.evaluate("form => form.submit()")
        page.wait_for_url("**/actions/preview")
        audit(page, f"a11y-{label}-action-preview", findings)
        assert_within_width(page, "#reason")
        assert_within_width(page, CONFIRM)
        page.get_by_label("Reason").fill(f"accessibility check on a {label} screen")
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_url("**/actions/results/*")
        audit(page, f"a11y-{label}-result", findings)
        (event,) = query(live_host, "SELECT max(id) AS id FROM powertools_audit_events")
        page.goto(live_host.url(base + "/audit"))
        audit(page, f"a11y-{label}-audit", findings)
        page.goto(live_host.url(f"{base}/audit/{event['id']}"))
        audit(page, f"a11y-{label}-audit-event", findings)

    # The dark palette (prefers-color-scheme) on the pages with the most colours in use.
    page.emulate_media(color_scheme="dark")
    for name, path in [("overview", "/"), ("jobs", "/jobs"), ("queues", "/queues")]:
        page.goto(live_host.url(base + path))
        audit(page, f"a11y-dark-{name}", findings)
    page.goto(live_host.url(f"{base}/audit/{event['id']}"))
    audit(page, "a11y-dark-audit-event", findings)
    context.close()
    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in findings.items())
    assert findings == {}, "\n" + report


KEYBOARD_REASON = "Digest paused from the keyboard: the mail relay is being migrated"


def test_keyboard_shortcuts(page: Page, live_host: LiveHost) -> None:
    login(page, live_host, "ops-demo")
    page.goto(live_host.url("/ops/jobs/"))

    # "?" opens the list as a modal dialog that holds the focus; Escape closes it.
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Close")).to_be_focused()
    for keys, label in [("g c", "Cron"), ("g j", "Jobs"), ("g a", "Audit")]:
        expect(dialog.get_by_role("term").filter(has_text=keys)).to_have_count(1)
        expect(dialog.get_by_role("definition").filter(has_text=label).first).to_be_visible()
    expect(dialog.get_by_text("Ctrl Enter")).to_be_visible()
    assert axe_violations(page) == []
    screenshot(page, "kbd-01-help-dialog")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.keyboard.press("g")
    page.keyboard.press("c")
    expect(page).to_have_url(live_host.url("/ops/jobs/cron"))
    expect(page.get_by_role("heading", name="Cron", exact=True)).to_be_visible()

    # Letters typed into a field stay in the field.
    page.keyboard.press("g")
    page.keyboard.press("j")
    expect(page).to_have_url(live_host.url("/ops/jobs/jobs"))
    page.keyboard.press("/")
    expect(page.get_by_label("State")).to_be_focused()
    page.get_by_label("Queue").click()
    page.keyboard.type("gc?r")
    expect(page.get_by_label("Queue")).to_have_value("gc?r")
    expect(page).to_have_url(live_host.url("/ops/jobs/jobs"))
    expect(dialog).to_be_hidden()

    # Escape leaves Reason, a second Escape goes back without changes.
    page.goto(live_host.url("/ops/jobs/cron/hourly_digest"))
    page.get_by_role("button", name="Pause cron entry").click()
    reason = page.get_by_label("Reason")
    expect(reason).to_be_visible()
    page.keyboard.press("r")
    expect(reason).to_be_focused()
    page.keyboard.press("Escape")
    expect(reason).not_to_be_focused()
    page.keyboard.press("Escape")
    expect(reason).to_have_count(0)
    expect(page).to_have_url(live_host.url("/ops/jobs/cron/hourly_digest"))

    # r, the reason, Ctrl+Enter: an audited pause.
    page.get_by_role("button", name="Pause cron entry").click()
    expect(reason).to_be_visible()
    page.keyboard.press("r")
    expect(reason).to_be_focused()
    page.keyboard.type(KEYBOARD_REASON)
    screenshot(page, "kbd-02-reason-typed")
    page.keyboard.press("Control+Enter")
    page.wait_for_url("**/actions/results/*")
    expect(page.get_by_text("cron.paused").first).to_be_visible()

    page.keyboard.press("g")
    page.keyboard.press("a")
    expect(page).to_have_url(live_host.url("/ops/jobs/audit"))
    row = page.locator("main tbody tr").filter(has_text=KEYBOARD_REASON)
    expect(row).to_have_count(1)
    expect(row.get_by_text("cron.paused")).to_be_visible()
    expect(row.get_by_text("cron_entry:hourly_digest")).to_be_visible()
    screenshot(page, "kbd-03-audit")
    events = query(
        live_host,
        "SELECT action, resource_id, principal_id, reason FROM powertools_audit_events"
        " WHERE reason = %s",
        KEYBOARD_REASON,
    )
    assert events == [
        {
            "action": "cron.paused",
            "resource_id": "hourly_digest",
            "principal_id": "ops-demo",
            "reason": KEYBOARD_REASON,
        }
    ]
    (entry,) = query(
        live_host, "SELECT paused FROM powertools_cron_entries WHERE name = 'hourly_digest'"
    )
    assert entry["paused"] is True
