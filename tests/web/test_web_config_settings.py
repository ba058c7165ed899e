"""The typed optional settings take effect: one CSRF secret across app instances, trusted
origins that may post, and when an executing job counts as stuck."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.web.helpers import (
    MOUNT,
    build_powertools,
    client,
    csrf_of,
    host_app,
    insert_job,
    insert_producer,
    seed_cron,
)

PREVIEW = {"action": "pause_cron_entry", "target": "nightly_sync"}
Clients = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def instances(db_url: str) -> AsyncIterator[Callable[..., Clients]]:
    """``instances(**settings)`` builds one more Powertools app on the same database and
    returns a client factory for it, as a second web process of the host would be."""
    async with AsyncExitStack() as stack:

        def make(**settings: Any) -> Clients:
            pt = build_powertools(db_url, **settings)
            stack.push_async_callback(pt.stop)
            app = host_app(pt)

            def clients(user: str | None = None, **headers: str) -> httpx.AsyncClient:
                c = client(app, user, **headers)
                stack.push_async_callback(c.aclose)
                return c

            return clients

        yield make


async def test_one_csrf_secret_lets_another_instance_accept_the_form(
    instances: Callable[..., Clients], conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    first = instances(csrf_secret="shared-secret-of-every-process")
    second = instances(csrf_secret="shared-secret-of-every-process")
    other = instances(csrf_secret="another-secret-of-another-host")
    token = csrf_of((await first("ops-demo").get(f"{MOUNT}/cron")).text)
    # The form one process rendered is accepted by another with the same secret...
    accepted = await second("ops-demo").post(
        f"{MOUNT}/actions/preview", data={**PREVIEW, "csrf_token": token}
    )
    assert accepted.status_code == 200
    # ...and refused by one signing with another secret.
    refused = await other("ops-demo").post(
        f"{MOUNT}/actions/preview", data={**PREVIEW, "csrf_token": token}
    )
    assert refused.status_code == 403


async def test_a_trusted_origin_may_post_and_others_still_may_not(
    instances: Callable[..., Clients], conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    plain = instances()
    trusting = instances(trusted_origins=["https://ops.example.com"])
    token = csrf_of((await plain("ops-demo").get(f"{MOUNT}/cron")).text)
    form = {**PREVIEW, "csrf_token": token}
    proxied = {"origin": "https://ops.example.com"}
    # Without the setting, a page served under another origin is refused.
    assert (
        await plain("ops-demo", **proxied).post(f"{MOUNT}/actions/preview", data=form)
    ).status_code == 403
    assert (
        await trusting("ops-demo", **proxied).post(f"{MOUNT}/actions/preview", data=form)
    ).status_code == 200
    evil = trusting("ops-demo", origin="https://evil.example")
    assert (await evil.post(f"{MOUNT}/actions/preview", data=form)).status_code == 403


async def test_stuck_after_seconds_decides_which_executing_jobs_the_overview_lists(
    instances: Callable[..., Clients], conn: psycopg.AsyncConnection[Any]
) -> None:
    live = await insert_producer(conn, queue="default", node="worker-1")
    job = await insert_job(
        conn,
        state="executing",
        attempt=1,
        attempted_by=["worker-1", live],
        attempted_ago=timedelta(minutes=10),
    )
    stuck = f"Job {job} (app.SendEmail) looks stuck"
    # Ten minutes on a live node is within the default 15: not listed.
    default = (await instances()("ops-demo").get(f"{MOUNT}/")).text
    assert stuck not in default
    tuned = (await instances(stuck_after_seconds=5 * 60)("ops-demo").get(f"{MOUNT}/")).text
    assert stuck in tuned and "longer than 5 minutes" in tuned
