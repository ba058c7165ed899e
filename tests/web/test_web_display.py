"""One redaction path: hostile job data stays inert, redacted values never leave.

The display policy redacts fields named "password" at any depth. Job args, meta, error
tracebacks and cron args hold secrets; no page, list, search, audit entry or forensics
bundle may show them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg

from oban_powertools import Powertools
from oban_powertools.display import Display
from oban_powertools.forensics import build_bundle
from oban_powertools.read_models import job_detail
from oban_powertools.read_models import jobs as jobs_model
from tests.web.helpers import (
    MOUNT,
    SECRETS,
    TRACEBACK,
    RedactingDisplay,
    csrf_of,
    insert_job,
    insert_producer,
    seed_cron,
    token_of,
)

Client = Callable[..., httpx.AsyncClient]
SCRIPT = "<script>alert(1)</script>"


async def seed_secrets(conn: psycopg.AsyncConnection[Any]) -> int:
    await seed_cron(conn)
    await insert_producer(conn, queue="mailers")
    job = await insert_job(
        conn,
        state="retryable",
        worker="app.SendEmail",
        queue="mailers",
        args={
            "to": "ana@example.com",
            "note": SCRIPT,
            "password": "hunter2-secret",
            "account": {"user": "ana", "password": "nested-secret"},
        },
        meta={"password": "meta-secret", "trace": "x"},
        errors=[{"attempt": 1, "at": "2025-01-01T00:00:00+00:00", "error": TRACEBACK}],
        attempt=1,
        tags=["mail"],
    )
    await insert_job(
        conn,
        state="discarded",
        worker="app.SendEmail",
        queue="mailers",
        args={"password": "hunter2-secret"},
        errors=[{"attempt": 20, "at": "2025-01-01T00:00:00+00:00", "error": TRACEBACK}],
        attempt=20,
    )
    return job


def assert_clean(text: str, where: str, *, html: bool = False) -> None:
    for secret in SECRETS:
        assert secret not in text, (where, secret)
    if html:
        assert SCRIPT not in text, where


async def test_no_page_shows_a_redacted_value(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await seed_secrets(conn)
    ops = as_user("ops-demo")

    # An audited action on the job, so the audit trail and result page hold its snapshot.
    csrf = csrf_of((await ops.get(f"{MOUNT}/jobs/{job}")).text)
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "discard_job", "target": str(job)},
    )
    assert_clean(preview.text, "preview")
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(preview.text), "reason": "stop mailing"},
    )
    assert done.status_code == 303

    pages = [
        "/",
        "/jobs",
        "/jobs?q=ana",
        "/jobs?state=discarded",
        f"/jobs/{job}",
        "/cron",
        "/cron/nightly_sync",
        "/queues",
        "/audit",
        done.headers["location"].removeprefix(MOUNT),
        f"/forensics?resource_type=job&resource_id={job}",
        "/forensics?resource_type=cron_entry&resource_id=nightly_sync",
        "/forensics?resource_type=queue&resource_id=mailers",
        f"/forensics/bundle.json?resource_type=job&resource_id={job}",
        "/forensics/bundle.json?resource_type=cron_entry&resource_id=nightly_sync",
    ]
    for path in pages:
        response = await ops.get(MOUNT + path)
        assert response.status_code == 200, path
        assert_clean(response.text, path, html=not path.startswith("/forensics/bundle"))

    detail = (await ops.get(f"{MOUNT}/jobs/{job}")).text
    # Hostile markup is shown as text, escaped, never as markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail
    assert "&#34;password&#34;: &#34;[redacted]&#34;" in detail
    # The traceback quoted the secrets; they are masked where they reappear.
    assert "password=&#39;[redacted]&#39;" in detail
    assert "RuntimeError: login failed" in detail
    cron = (await ops.get(f"{MOUNT}/cron/nightly_sync")).text
    assert "&#34;password&#34;: &#34;[redacted]&#34;" in cron


async def test_args_search_cannot_find_a_secret(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await seed_secrets(conn)
    ops = as_user("ops-demo")
    hit = await ops.get(f"{MOUNT}/jobs", params={"q": "ana@example"})
    assert f'href="{MOUNT}/jobs/{job}"' in hit.text
    for secret in ("hunter2", "nested-secret"):
        miss = await ops.get(f"{MOUNT}/jobs", params={"q": secret})
        assert f'href="{MOUNT}/jobs/{job}"' not in miss.text
        assert "No job matches" in miss.text
        echoes = (f'value="{secret}"', f"q={secret}")  # the operator's own query, echoed
        text = miss.text
        for echo in echoes:
            text = text.replace(echo, "")
        assert secret not in text


async def test_bundles_and_read_models_apply_the_policy(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    job = await seed_secrets(conn)
    policy = RedactingDisplay()
    display = Display(policy, "forensics")
    await powertools.start()
    for subject in (("job", str(job)), ("cron_entry", "nightly_sync"), ("queue", "mailers")):
        bundle = await build_bundle(powertools.db, display, *subject)
        assert_clean(json.dumps(bundle.to_dict()), str(subject))
    assert policy.surfaces == {"forensics"}

    detail = await job_detail.job_detail(powertools.db, Display(policy), job)
    assert detail is not None
    assert_clean(detail.args_json + detail.meta_json, "detail")
    assert all(secret not in e.text for e in detail.errors for secret in SECRETS)
    listing = await jobs_model.list_jobs(powertools.db, Display(policy), jobs_model.JobFilters())
    assert_clean(repr(listing), "listing")


def test_policy_is_applied_per_key_path() -> None:
    class ByPath:
        def display(self, kind: str, value: Any, context: Any) -> str | None:
            if context.extra.get("path") == "a.b":
                return "[hidden]"
            return None

    shown = Display(ByPath()).tree("args", {"a": {"b": "x1234", "c": [1, {"b": "y"}]}, "b": "z"})
    assert shown.value == {"a": {"b": "[hidden]", "c": [1, {"b": "y"}]}, "b": "z"}
    assert shown.secrets == {"x1234": "[hidden]"}


def test_policy_must_be_synchronous_and_return_text() -> None:
    class Broken:
        def display(self, kind: str, value: Any, context: Any) -> Any:
            return 42

    try:
        Display(Broken()).text("queue", "default")
    except TypeError as exc:
        assert "return a str or None" in str(exc)
    else:
        raise AssertionError("a non-string answer must not be rendered")


async def test_stuck_job_with_secret_is_listed_clean(
    powertools: Powertools, conn: psycopg.AsyncConnection[Any]
) -> None:
    await insert_job(
        conn,
        state="executing",
        args={"password": "hunter2-secret"},
        attempt=1,
        attempted_by=["gone-node", "00000000-0000-0000-0000-000000000000"],
        attempted_ago=timedelta(hours=2),
    )
    from oban_powertools.read_models.overview import overview

    await powertools.start()
    data = await overview(powertools.db, Display(RedactingDisplay()))
    assert_clean(repr(data), "overview")
