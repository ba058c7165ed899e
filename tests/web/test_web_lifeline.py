"""The Lifeline sections of the overview and the queues page: orphaned and stuck counts by
queue (counted in the database), the evidence of a few jobs per queue and kind, and the
previews of each queue's repairs, through the pipeline (the forms name a queue and kind,
never the jobs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.read_models import lifeline as lifeline_model
from oban_powertools.read_models.common import Count
from tests.web.helpers import (
    MOUNT,
    RedactingDisplay,
    csrf_of,
    insert_job,
    scalar,
    seed_lifeline,
    token_of,
    visible_text,
)

Client = Callable[..., httpx.AsyncClient]


def lifeline_part(html: str) -> str:
    match = re.search(r'<section class="card lifeline".*?</section>', html, flags=re.DOTALL)
    assert match, "no Lifeline section on the page"
    return match.group(0)


async def test_read_model_counts_orphaned_and_stuck_jobs_by_queue(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    seeded = await seed_lifeline(conn)
    await powertools.start()
    async with powertools.db.connection() as c:
        counts = await lifeline_model.lifeline_counts(c, grace=60, stuck_after=900)
        view = await lifeline_model.lifeline(c, grace=60, stuck_after=900)
    assert (counts.orphaned, counts.stuck, counts.orphaned_producers) == (2, 1, 1)
    assert counts.by_queue["exports"] == lifeline_model.QueueCounts(2, 0)
    assert counts.by_queue["reports"] == lifeline_model.QueueCounts(0, 1)
    assert not counts.capped
    async with powertools.db.connection() as c:
        # The two oldest of the four executing jobs: the 2-hour stuck one and an orphan.
        oldest = await lifeline_model.lifeline_counts(c, grace=60, stuck_after=900, scan=2)
    assert oldest.capped and (oldest.orphaned, oldest.stuck) == (1, 1)
    assert not counts.capped
    assert [(q.key, q.orphaned_count, q.stuck_count) for q in view.by_queue] == [
        ("exports", 2, 0),
        ("reports", 0, 1),
    ]
    (exports, reports) = view.by_queue
    assert sorted(j.id for j in exports.orphaned) == sorted(seeded["orphans"])
    assert exports.stuck == [] and [j.id for j in reports.stuck] == [seeded["stuck"]]
    assert (view.orphaned_count.value, view.stuck_count.value) == (2, 1)
    assert view.orphaned_count.kind == "exact" and view.orphaned_producers == 1
    orphan = exports.orphaned[0]
    assert not orphan.displayed  # as stored until a page shows it
    orphan = lifeline_model.shown(orphan, Display(RedactingDisplay()))
    assert orphan.displayed and orphan.node == "worker-dead" and orphan.producer == seeded["dead"]
    assert orphan.last_heartbeat is not None and orphan.rescue_at is not None
    assert orphan.rescue_at - orphan.last_heartbeat == timedelta(seconds=60)


async def more_orphans(conn: psycopg.AsyncConnection[Any], dead: str, n: int) -> list[int]:
    """``n`` more orphans of queue exports, older than the seeded ones (1 h + i min)."""
    return [
        await insert_job(
            conn,
            queue="exports",
            state="executing",
            attempt=1,
            attempted_by=["worker-dead", dead],
            attempted_ago=timedelta(hours=1, minutes=i),
        )
        for i in range(n)
    ]


async def test_counts_come_from_the_database_and_the_evidence_is_a_few_oldest_per_queue(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    seeded = await seed_lifeline(conn)
    older = await more_orphans(conn, seeded["dead"], 7)  # 9 orphans in exports
    await powertools.start()
    async with powertools.db.connection() as c:
        view = await lifeline_model.lifeline(c, grace=60, stuck_after=900, each=3)
        capped = await lifeline_model.lifeline(c, grace=60, stuck_after=900, scan=4, each=3)
    exports = next(q for q in view.by_queue if q.key == "exports")
    assert (exports.orphaned_count, view.orphaned_count.value) == (9, 9)
    # The sample: the three oldest orphans (older[i] is i+60 minutes old), ranked in SQL.
    assert [j.id for j in exports.orphaned] == [older[6], older[5], older[4]]
    # Looking at the four oldest executing jobs only (the 2-hour stuck one and three
    # orphans): lower bounds, said so.
    assert capped.orphaned_count == Count(3, "at_least")
    assert capped.stuck_count == Count(1, "at_least")

    section = lifeline_part((await as_user("ops-demo").get(f"{MOUNT}/queues")).text)
    text = visible_text(section)
    assert "9 orphaned (from 1 producer that stopped heartbeating) · 1 stuck" in text
    assert "and 6 more orphaned" in text and "Preview rescue of 9" in text
    assert text.count("stopped heartbeating") == 1 + 3  # the summary, then three jobs
    # The form names the queue and kind, not the jobs.
    assert 'name="target"' not in section
    assert 'name="param.queue" value="exports"' in section
    assert 'name="param.kind" value="orphaned"' in section


async def test_overview_and_queues_show_the_lifeline_and_preview_the_rescue(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    seeded = await seed_lifeline(conn)
    ops = as_user("ops-demo")
    for path in ("/", "/queues"):
        page = await ops.get(f"{MOUNT}{path}")
        assert page.status_code == 200
        section = lifeline_part(page.text)
        text = visible_text(section)
        assert "2 orphaned (from 1 producer that stopped heartbeating) · 1 stuck" in text
        assert "on node worker-dead: producer" in text and "stopped heartbeating" in text
        assert "the lifeline was due to rescue it at ~" in text and "has not" in text
        assert "running for 2 h" in text and "not rescued automatically" in text
        assert "Preview rescue of 2" in text and "Preview discard of 1 stuck" in text
        assert f'/jobs/{seeded["healthy"]}"' not in section  # a healthy job is not listed
        rescue_form = re.search(
            r'<form[^>]*>(?:(?!</form>).)*value="rescue_jobs"(?:(?!</form>).)*</form>',
            section,
            flags=re.DOTALL,
        )
        assert rescue_form is not None
        assert 'name="target"' not in rescue_form.group(0)  # the preview finds the jobs
        assert 'name="param.queue" value="exports"' in rescue_form.group(0)
        assert 'name="param.kind" value="orphaned"' in rescue_form.group(0)

    page = await ops.get(f"{MOUNT}/queues")
    csrf = csrf_of(page.text)
    form = {
        "csrf_token": csrf,
        "action": "rescue_jobs",
        "return_to": "/queues",
        "param.queue": "exports",
        "param.kind": "orphaned",
    }
    preview = await ops.post(f"{MOUNT}/actions/preview", data=form)
    assert preview.status_code == 200, preview.text
    shown = visible_text(preview.text)
    assert "Rescues the 2 orphaned jobs of queue exports, exactly these" in shown
    assert "on node worker-dead, producer" in shown and "last heartbeat" in shown
    assert f"job {seeded['healthy']}" not in shown
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(preview.text), "reason": "worker-dead died"},
    )
    assert done.status_code == 303
    states = await scalar(
        conn,
        "SELECT array_agg(state::text ORDER BY id) FROM oban_jobs WHERE id = ANY(%(ids)s)",
        {"ids": seeded["orphans"]},
    )
    assert states == ["available", "available"]
    event = await scalar(conn, "SELECT action || ' ' || surface FROM powertools_audit_events")
    assert event == "job.rescued web"
    after = visible_text(lifeline_part((await ops.get(f"{MOUNT}/")).text))
    assert "0 orphaned · 1 stuck" in after


async def test_a_viewer_sees_the_lifeline_but_no_repair(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_lifeline(conn)
    section = lifeline_part((await as_user("ops-viewer").get(f"{MOUNT}/")).text)
    assert "2 orphaned" in visible_text(section)
    assert "rescue_jobs" not in section and "discard_stuck_jobs" not in section
    assert "Wait for the lifeline, or ask an operator." in visible_text(section)


async def test_nothing_orphaned_or_stuck_says_so(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    section = visible_text(lifeline_part((await as_user("ops-demo").get(f"{MOUNT}/queues")).text))
    assert "0 orphaned · 0 stuck" in section
    assert "No orphaned or stuck job: every executing job's producer heartbeated within 60 s" in (
        section
    )


async def test_forensics_and_the_explainer_name_the_orphaned_producer(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    from oban_powertools.forensics import build_bundle
    from oban_powertools.read_models.explain import explain

    seeded = await seed_lifeline(conn)
    orphan, healthy = seeded["orphans"][0], seeded["healthy"]
    await powertools.start()
    display = Display(RedactingDisplay())
    bundle = await build_bundle(powertools.db, display.on("forensics"), "job", str(orphan))
    assert bundle.state == "orphaned"
    said = f"executing on node worker-dead whose producer {seeded['dead']} stopped heartbeating at"
    assert said in bundle.diagnosis
    assert "the lifeline was due to rescue it at ~" in bundle.diagnosis  # no lifeline ran here
    assert any(p.href == "/queues#lifeline" for p in bundle.next_paths)
    answer = await explain(powertools.db, display, orphan)
    assert answer is not None and f"Job {orphan} is orphaned: {said}" in answer.summary

    # Heartbeating 2 minutes ago with a 10-minute grace: not orphaned yet; the rescue is due.
    async with powertools.db.connection() as c:
        await c.execute(
            "UPDATE oban_producers SET updated_at = timezone('UTC', now()) - interval '2 min'"
            " WHERE uuid = %s",
            (seeded["dead"],),
        )
    young = await build_bundle(
        powertools.db, display.on("forensics"), "job", str(orphan), lifeline_grace=600
    )
    assert young.state == "executing"
    later = await build_bundle(
        powertools.db, display.on("forensics"), "job", str(orphan), lifeline_grace=90
    )
    assert "the lifeline will rescue it at ~" in later.diagnosis
    healthy_answer = await explain(powertools.db, display, healthy)
    assert healthy_answer is not None and "is executing (attempt 1 of 20" in healthy_answer.summary

    page = visible_text((await as_user("ops-demo").get(f"{MOUNT}/jobs/{orphan}")).text)
    assert said in page


class CountingDisplay:
    """Counts the values it is asked about (and shows them as they are)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def display(self, kind: str, value: Any, context: Any) -> str | None:
        self.asked.append(kind)
        return None


async def test_the_section_asks_the_display_policy_about_the_evidence_it_writes_out_only(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    # Two orphans in one queue, evidence written out for one of each kind per queue: the
    # policy is asked about the queue's name and the one shown job, not about the other.
    await seed_lifeline(conn)
    await powertools.start()
    async with powertools.db.connection() as c:
        view = await lifeline_model.lifeline(c, grace=60, stuck_after=900, each=1)
    counting = CountingDisplay()
    exports = next(q for q in view.by_queue if q.key == "exports")
    assert exports.orphaned_count == 2 and len(exports.orphaned) == 1  # sampled in SQL
    shown = exports.evidence(Display(counting))
    assert [j.displayed for j in shown.orphaned] == [True]
    assert sorted(counting.asked) == ["node", "producer", "queue", "queue", "worker"]


async def test_the_json_api_repairs_a_queue_and_reports_the_jobs_it_left(
    powertools: Powertools, as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    seeded = await seed_lifeline(conn)
    ops = as_user("ops-demo")
    preview = await ops.post(
        f"{MOUNT}/api/actions/preview",
        json={"action": "rescue_jobs", "targets": [], "params": {"queue": "exports"}},
    )
    assert preview.status_code == 201, preview.text
    body = preview.json()
    assert sorted(int(t) for t in body["targets"]) == sorted(seeded["orphans"])
    assert body["resource"] == "job:bulk:2"
    finished, left = seeded["orphans"]
    await conn.execute("UPDATE oban_jobs SET state = 'completed' WHERE id = %s", (finished,))
    done = await ops.post(
        f"{MOUNT}/api/actions/confirm", json={"token": body["token"], "reason": "node died"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["skipped"] == [str(finished)]
    states = await scalar(
        conn,
        "SELECT array_agg(state::text ORDER BY id) FROM oban_jobs WHERE id = ANY(%(ids)s)",
        {"ids": [finished, left]},
    )
    assert states == ["completed", "available"]

    unknown = await ops.post(
        f"{MOUNT}/api/actions/preview",
        json={"action": "rescue_jobs", "targets": [], "params": {"queue": "nowhere"}},
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "invalid_params"
    assert "unknown queue 'nowhere'" in unknown.json()["error"]["message"]
