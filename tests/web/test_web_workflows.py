"""The workflow pages: the keyset list with its filters, one workflow with its graph drawn
server-side, its steps, counters and sub-workflows, behind the host's auth seam."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.workflow_rows import StepSpec, attach, build, diamond
from tests.web.helpers import MOUNT, csrf_of, token_of, visible_text

Client = Callable[..., httpx.AsyncClient]


async def test_the_list_shows_state_progress_and_filters(as_user: Client, conn: Any) -> None:
    running = await build(conn, "invoice", diamond(a="completed", b="executing"))
    done = await build(
        conn, "report", {"x": StepSpec(state="completed"), "y": StepSpec(("x",), "completed")}
    )
    failed = await build(conn, "invoice", diamond(a="completed", b="discarded", c="completed"))
    page = await as_user("ops-viewer").get(f"{MOUNT}/workflows")
    assert page.status_code == 200
    text = visible_text(page.text)
    for w in (running, done, failed):
        assert f'href="{MOUNT}/workflows/{w.id}"' in page.text
    # Newest first.
    assert page.text.index(failed.id) < page.text.index(done.id) < page.text.index(running.id)
    assert "1 of 4 steps finished (1 completed)" in text
    assert "2 of 2 steps finished (2 completed)" in text
    assert ">Workflows</a>" in page.text  # the navigation link

    by_state = await as_user("ops-viewer").get(f"{MOUNT}/workflows", params={"state": "completed"})
    assert done.id in by_state.text and running.id not in by_state.text
    by_name = await as_user("ops-viewer").get(f"{MOUNT}/workflows", params={"name": "invoice"})
    assert running.id in by_name.text and failed.id in by_name.text and done.id not in by_name.text

    bad = await as_user("ops-viewer").get(f"{MOUNT}/workflows", params={"state": "nope"})
    assert bad.status_code == 400 and "unknown workflow state" in bad.text
    bad = await as_user("ops-viewer").get(f"{MOUNT}/workflows", params={"before": "x"})
    assert bad.status_code == 400 and "cursor from a page link" in bad.text


async def test_the_list_pages_by_keyset(as_user: Client, conn: Any) -> None:
    ids = [
        (await build(conn, f"w{i:02}", {"only": StepSpec(state="available")})).id for i in range(55)
    ]
    first = await as_user("ops-viewer").get(f"{MOUNT}/workflows")
    shown = re.findall(r'href="/ops/jobs/workflows/([0-9a-f-]{36})"', first.text)
    assert len(set(shown)) == 50
    match = re.search(r'href="/ops/jobs/workflows\?before=([^"&]+)"', first.text)
    assert match
    second = await as_user("ops-viewer").get(f"{MOUNT}/workflows", params={"before": match[1]})
    rest = re.findall(r'href="/ops/jobs/workflows/([0-9a-f-]{36})"', second.text)
    assert len(set(rest)) == 5 and not set(rest) & set(shown)
    assert set(shown) | set(rest) == set(ids)


async def test_the_detail_draws_the_graph(as_user: Client, conn: Any) -> None:
    wf = await build(
        conn,
        "invoice",
        {
            "fetch": StepSpec(state="completed"),
            "render": StepSpec(("fetch",), "discarded", attempt=3),
            "mail": StepSpec(
                ("render",), "cancelled", cancelled_by="workflow dependency render discarded"
            ),
            "audit": StepSpec(("fetch",), "executing"),
        },
    )
    page = await as_user("ops-viewer").get(f"{MOUNT}/workflows/{wf.id}")
    assert page.status_code == 200
    html = page.text
    (svg,) = re.findall(r'<svg class="dag" role="img".*?</svg>', html, flags=re.DOTALL)
    assert 'aria-labelledby="dag-title dag-desc"' in svg
    assert '<title id="dag-title">Graph of workflow invoice</title>' in svg
    assert "4 steps in 3 columns, 3 dependencies" in svg
    assert svg.count('class="dag-node ') == 4
    for state in ("completed", "discarded", "cancelled", "executing"):
        assert f"dag-state-{state}" in svg
        assert 'class="dag-state"' in svg
    # Labelled, not colour alone: each box carries its state in words.
    assert re.search(r'<text class="dag-state"[^>]*>discarded</text>', svg)
    # The links are in the overlay, out of the tab order and hidden from AT; the table
    # has the same ones.
    (links,) = re.findall(r'<svg class="dag-links" aria-hidden="true".*?</svg>', html, re.DOTALL)
    for step, job in wf.jobs.items():
        assert f'href="{MOUNT}/jobs/{job}" tabindex="-1"' in links
        assert html.count(f'href="{MOUNT}/jobs/{job}"') == 2, step
    assert 'href="' not in svg
    text = visible_text(html)
    assert "3 of 4 steps finished (1 completed, 1 cancelled, 1 discarded)" in text
    assert "cancelled (workflow dependency render discarded)" in text
    assert 'class="dag-scroll" tabindex="0" role="region"' in html


async def test_sub_workflows_link_both_ways(as_user: Client, conn: Any) -> None:
    parent = await build(
        conn,
        "parent",
        {"first": StepSpec(state="completed"), "nested": StepSpec(("first",))},
    )
    sub = await build(
        conn, "child", {"inner": StepSpec(state="available")}, parent=(parent.id, "nested")
    )
    await attach(conn, parent.id, "nested", sub.id)
    page = await as_user("ops-viewer").get(f"{MOUNT}/workflows/{parent.id}")
    assert f'href="{MOUNT}/workflows/{sub.id}" tabindex="-1"' in page.text
    assert "sub-workflow child" in visible_text(page.text)
    assert "Sub-workflows" in page.text
    child = await as_user("ops-viewer").get(f"{MOUNT}/workflows/{sub.id}")
    assert f'href="{MOUNT}/workflows/{parent.id}"' in child.text
    assert "step nested of workflow parent" in visible_text(child.text)


async def test_a_missed_release_is_named(as_user: Client, conn: Any) -> None:
    steps = diamond(a="completed", b="completed", c="completed")
    steps["d"].pending = 0  # every dependency completed, yet still suspended
    wf = await build(conn, "stuck", steps)
    text = visible_text((await as_user("ops-viewer").get(f"{MOUNT}/workflows/{wf.id}")).text)
    assert "Release missed. 1 step (d) still waits although every dependency has finished" in text
    assert "suspended, release missed" in text


async def test_a_large_workflow_is_summarised(as_user: Client, conn: Any) -> None:
    steps = {f"s{i:03}": StepSpec(state="available") for i in range(205)}
    wf = await build(conn, "big", steps)
    page = await as_user("ops-viewer").get(f"{MOUNT}/workflows/{wf.id}")
    text = visible_text(page.text)
    assert 'class="dag"' not in page.text
    assert "This workflow has 205 steps: the graph is drawn for workflows of up to 200" in text
    assert page.text.count("<tr data-step-state") == 200
    more = await as_user("ops-viewer").get(
        f"{MOUNT}/workflows/{wf.id}", params={"steps_from": "200"}
    )
    assert more.text.count("<tr data-step-state") == 5 and "s204" in more.text


async def test_names_pass_the_display_policy(as_user: Client, conn: Any) -> None:
    wf = await build(conn, "nightly", {"a": StepSpec(state="available", worker="app.Secret")})
    text = visible_text((await as_user("ops-viewer").get(f"{MOUNT}/workflows/{wf.id}")).text)
    assert "app.Secret" in text  # the test policy leaves workers alone; the kind is asked


async def test_the_auth_seam_and_bad_ids(as_user: Client, conn: Any) -> None:
    wf = await build(conn, "private", diamond())
    for path in ("/workflows", f"/workflows/{wf.id}"):
        assert (await as_user().get(MOUNT + path)).status_code == 401
        refused = await as_user("ops-guest").get(MOUNT + path)
        assert refused.status_code == 403 and wf.id not in refused.text
    for bad in ("nope", "00000000-0000-4000-8000-00000000000z", wf.id[:-1] + "0" * 2):
        assert (await as_user("ops-viewer").get(f"{MOUNT}/workflows/{bad}")).status_code == 404
    missing = "00000000-0000-4000-8000-00000000dead"
    assert (await as_user("ops-viewer").get(f"{MOUNT}/workflows/{missing}")).status_code == 404


async def test_cancel_from_the_page_through_preview_reason_confirm(
    as_user: Client, conn: Any
) -> None:
    wf = await build(conn, "invoice", diamond(a="completed", b="available"))
    ops = as_user("ops-demo")
    page = await ops.get(f"{MOUNT}/workflows/{wf.id}")
    assert ">Cancel workflow</button>" in page.text
    assert ">Retry workflow</button>" not in page.text  # nothing failed yet
    viewer_page = await as_user("ops-viewer").get(f"{MOUNT}/workflows/{wf.id}")
    assert ">Cancel workflow</button>" not in viewer_page.text and "Read-only." in viewer_page.text
    panel = await ops.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": csrf_of(page.text),
            "action": "cancel_workflow",
            "target": wf.id,
            "return_to": f"/workflows/{wf.id}",
        },
    )
    assert panel.status_code == 200
    text = visible_text(panel.text)
    assert "Exactly these 3 jobs change" in text
    for step in ("b", "c", "d"):
        assert f"job {wf.jobs[step]} (step {step}):" in text
    assert f"job {wf.jobs['a']} " not in text
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={
            "csrf_token": csrf_of(page.text),
            "token": token_of(panel.text),
            "reason": "customer withdrew",
        },
    )
    assert done.status_code == 303
    result = await ops.get(done.headers["location"])
    assert "workflow.cancelled" in result.text
    after = await ops.get(f"{MOUNT}/workflows/{wf.id}")
    assert ">Cancel workflow</button>" not in after.text
    assert ">Retry workflow</button>" in after.text  # cancelled steps can run again


async def test_a_step_job_links_to_its_workflow(as_user: Client, conn: Any) -> None:
    wf = await build(conn, "invoice", diamond())
    page = await as_user("ops-viewer").get(f"{MOUNT}/jobs/{wf.jobs['d']}")
    assert f'href="{MOUNT}/workflows/{wf.id}"' in page.text
    text = visible_text(page.text)
    assert "Workflow step d of its workflow" in text
    assert "Waiting on dependencies b, c" in text
