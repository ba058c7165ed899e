"""A typed worker's sensitive fields are never shown: not on a page, in an API response,
an audit snapshot, a forensics bundle or an export, though the host's display policy knows
nothing about them (it redacts only "password" and "api_key").

The job really runs and fails with an error quoting its secret, so its traceback holds it
too; every byte of every surface is searched for the secret values.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from oban import Oban
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools, Sensitive, typed_worker
from oban_powertools.runtime import Runtime
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, csrf_of, token_of

Client = Callable[..., httpx.AsyncClient]
CARD_NUMBER = "tok-4242-SECRET"
SIGNING = "sig-SECRET-9913"
SECRETS = (CARD_NUMBER, SIGNING)


@dataclass
class Card:
    number: Annotated[str, Sensitive()]
    holder: str


@dataclass
class ChargeArgs:
    customer_id: int
    card: Card
    signing_secret: str = field(default="", metadata={"sensitive": True})


@typed_worker(queue="billing", args=ChargeArgs, max_attempts=3)
class Charge:
    async def perform(self, args: ChargeArgs, job: Any) -> None:
        # An error that quotes the secrets, as careless code does.
        raise RuntimeError(
            f"card {args.card.number} declined (signed with {args.signing_secret!r})"
        )


@pytest.fixture
async def failed_job(powertools: Powertools) -> AsyncIterator[int]:
    await powertools.start()
    url = powertools.config.database_url
    async with AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool:
        runtime = Runtime(powertools, declarations=[], import_oban_cron=False)
        node = Oban(pool=pool, node="billing-1", queues={"billing": 1}, **runtime.oban_options())
        await node.start()
        try:
            job = await Charge.enqueue(
                ChargeArgs(customer_id=7, card=Card(CARD_NUMBER, "Ana"), signing_secret=SIGNING)
            )
            assert job.id is not None
            assert job.meta["redact"] == ["card.number", "signing_secret"]

            async def failed() -> bool:
                async with powertools.db.connection() as conn:
                    cur = await conn.execute(
                        "SELECT state::text AS state FROM oban_jobs WHERE id = %s", [job.id]
                    )
                    row = await cur.fetchone()
                return row is not None and row["state"] == "retryable"

            await eventually(failed, within=15, what="the charge failed once")
        finally:
            await node.stop()
    yield job.id


def assert_clean(body: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in body, (where, secret)


async def test_a_sensitive_field_never_appears_on_any_surface(
    as_user: Client, failed_job: int, powertools: Powertools
) -> None:
    job = failed_job
    async with powertools.db.connection() as conn:
        cur = await conn.execute("SELECT args, errors FROM oban_jobs WHERE id = %s", [job])
        stored = await cur.fetchone()
    assert stored is not None and stored["args"]["card"]["number"] == CARD_NUMBER
    assert CARD_NUMBER in stored["errors"][0]["error"]  # the secret really is in the data

    ops = as_user("ops-demo")
    bodies: dict[str, bytes] = {}

    # The JSON API: preview and confirm a cancel of the job (its audit snapshot).
    preview = await ops.post(
        f"{MOUNT}/api/actions/preview", json={"action": "cancel_job", "targets": [str(job)]}
    )
    assert preview.status_code == 201, preview.text
    bodies["api preview"] = preview.content
    token = preview.json()["token"]
    bodies["api preview show"] = (await ops.get(f"{MOUNT}/api/previews/{token}")).content
    confirm = await ops.post(
        f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": "customer asked"}
    )
    assert confirm.status_code == 200, confirm.text
    bodies["api confirm"] = confirm.content

    # The page pipeline: retry the cancelled job from its page (another audit entry).
    csrf = csrf_of((await ops.get(f"{MOUNT}/jobs/{job}")).text)
    page_preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "retry_job", "target": str(job)},
    )
    bodies["page preview"] = page_preview.content
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(page_preview.text), "reason": "try again"},
    )
    assert done.status_code == 303

    pages = [
        "/",
        "/jobs",
        "/jobs?state=available",
        "/jobs?queue=billing",
        f"/jobs?q={CARD_NUMBER}",
        f"/jobs/{job}",
        "/queues",
        "/audit",
        done.headers["location"].removeprefix(MOUNT),
        f"/forensics?resource_type=job&resource_id={job}",
        f"/forensics/bundle.json?resource_type=job&resource_id={job}",
        "/forensics?resource_type=queue&resource_id=billing",
        "/forensics/bundle.json?resource_type=queue&resource_id=billing",
    ]
    for path in pages:
        response = await ops.get(MOUNT + path)
        assert response.status_code == 200, path
        bodies[path] = response.content
    # The search page echoes the operator's own query; nothing else may hold the secret.
    search = f"/jobs?q={CARD_NUMBER}"
    for echo in (f'value="{CARD_NUMBER}"', f"q={CARD_NUMBER}"):
        bodies[search] = bodies[search].replace(echo.encode(), b"")
    for where, body in bodies.items():
        assert_clean(body, where)

    detail = bodies[f"/jobs/{job}"].decode()
    assert "&#34;number&#34;: &#34;[redacted]&#34;" in detail
    assert "&#34;holder&#34;: &#34;Ana&#34;" in detail  # the rest of the args still shows
    assert "card [redacted] declined" in detail  # the traceback, masked where it quotes
    # Searching for the secret finds nothing: the search runs over displayed args.
    assert f'href="{MOUNT}/jobs/{job}"' not in bodies[f"/jobs?q={CARD_NUMBER}"].decode()
    assert f'href="{MOUNT}/jobs/{job}"' in bodies["/jobs?queue=billing"].decode()
    assert b"cancel_job" in bodies["/audit"] and b"retry_job" in bodies["/audit"]
