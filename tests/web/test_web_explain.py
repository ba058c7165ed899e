""" "Why isn't this running?" on the job page and at GET /api/jobs/{id}/explain: every
prepared reason shown with its evidence, behind the host's auth seam."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import explain_scenarios as scenarios
from tests.web.helpers import MOUNT, visible_text

Client = Callable[..., httpx.AsyncClient]


def page_form(snippet: str) -> str:
    """Evidence "Label: value" as the page reads (a dt beside its dd)."""
    label, sep, value = snippet.partition(": ")
    return f"{label} {value}" if sep else snippet


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
async def test_the_page_shows_each_reason(as_user: Client, conn: Any, name: str) -> None:
    expect = await scenarios.SCENARIOS[name](conn)
    response = await as_user("ops-viewer").get(f"{MOUNT}/jobs/{expect.job_id}")
    assert response.status_code == 200
    html = response.text
    text = visible_text(html)
    if name == "not_waiting":
        assert "Why isn't this running?" not in text
        return
    assert 'aria-labelledby="explain-title"' in html and "Why isn't this running?" in text
    if expect.code is not None:
        assert f'data-reason="{expect.code}"' in html
    for snippet in expect.evidence:
        assert page_form(snippet) in text, text


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
async def test_the_api_answers_each_reason(as_user: Client, conn: Any, name: str) -> None:
    expect = await scenarios.SCENARIOS[name](conn)
    response = await as_user("ops-viewer").get(f"{MOUNT}/api/jobs/{expect.job_id}/explain")
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == expect.job_id
    if expect.code is None:
        assert not any(r["blocking"] for r in body["reasons"])
        text = body["summary"]
    else:
        (reason,) = [r for r in body["reasons"] if r["code"] == expect.code]
        assert reason["next_paths"] and reason["next_paths"][0]["ownership"]
        text = "\n".join(f"{e['label']}: {e['value']}" for e in reason["evidence"])
    for snippet in expect.evidence:
        assert snippet in text, body


async def test_the_api_passes_the_auth_seam(as_user: Client, conn: Any) -> None:
    expect = await scenarios.global_limit(conn)
    path = f"{MOUNT}/api/jobs/{expect.job_id}/explain"
    assert (await as_user().get(path)).status_code == 401
    refused = await as_user("ops-guest").get(path)
    assert refused.status_code == 403 and "reasons" not in refused.text
    assert (await as_user("ops-viewer").get(f"{MOUNT}/api/jobs/999999/explain")).json()["error"][
        "code"
    ] == "job_not_found"
    assert (await as_user("ops-viewer").get(f"{MOUNT}/api/jobs/nope/explain")).status_code == 404


async def test_the_api_redacts_the_partition(as_user: Client, conn: Any) -> None:
    await scenarios.producer(conn)
    await scenarios.limits(
        conn,
        global_limit=1,
        global_partitioned=True,
        partition_fields=["args"],
        partition_keys=["password"],
    )
    jid = await scenarios.job(conn, args={"password": "hunter2-secret"})
    await scenarios.job(conn, args={"password": "other-secret"})
    await conn.execute(
        "INSERT INTO powertools_limit_turns (queue, partition_key)"
        " SELECT queue, meta ->> 'partition_key' FROM oban_jobs WHERE id = %s",
        (jid,),
    )
    response = await as_user("ops-viewer").get(f"{MOUNT}/api/jobs/{jid}/explain")
    (turn,) = [r for r in response.json()["reasons"] if r["code"] == "partition_turn"]
    shown = {e["label"]: e["value"] for e in turn["evidence"]}
    assert shown["Its partition"] == shown["Served last"] == "password=[redacted]"
    assert "hunter2-secret" not in response.text and "other-secret" not in response.text
    page = await as_user("ops-viewer").get(f"{MOUNT}/jobs/{jid}")
    assert "password=[redacted]" in page.text
    assert "other-secret" not in page.text


async def test_the_forensics_bundle_carries_the_reasons(as_user: Client, conn: Any) -> None:
    expect = await scenarios.queue_paused(conn)
    response = await as_user("ops-viewer").get(
        f"{MOUNT}/forensics", params={"resource_type": "job", "resource_id": expect.job_id}
    )
    text = visible_text(response.text)
    assert "is not running: 1 reason holds it back" in text
    assert "Queue exports is paused (Paused by: Ops Demo (ops-demo); Why: provider outage" in text
    assert "Powertools-native Resume queue exports (Queues page)" in text


async def test_the_job_page_asks_the_explainer_once(
    as_user: Client, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page shows the explanation and the forensics chronology; the bundle reuses the
    page's explanation instead of gathering the same situation a second time."""
    from oban_powertools.forensics import job as forensics_job
    from oban_powertools.web.routes import jobs as job_routes

    calls: list[int] = []
    real = job_routes.explain

    async def counted(db: Any, display: Any, job_id: int, **options: Any) -> Any:
        calls.append(job_id)
        return await real(db, display, job_id, **options)

    monkeypatch.setattr(job_routes, "explain", counted)
    monkeypatch.setattr(forensics_job, "explain", counted)
    expect = await scenarios.SCENARIOS["queue_paused"](conn)
    response = await as_user("ops-viewer").get(f"{MOUNT}/jobs/{expect.job_id}")
    assert response.status_code == 200 and 'data-reason="queue_paused"' in response.text
    assert calls == [expect.job_id]
