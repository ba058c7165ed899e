"""A unique job's page shows its key, whether it blocks duplicates, and the other jobs of
the key, linked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.runtime.instance import install_hooks
from tests.web.helpers import MOUNT

Client = Callable[..., httpx.AsyncClient]


@worker(queue="sync", unique={"period": 300, "keys": ["account_id"]})
class SyncAccount:
    async def process(self, job: Any) -> None:
        return None


async def old_and_new(powertools: Powertools, account_id: int) -> tuple[Any, Any, Any]:
    """An old job of the key whose period is over, the new one holding the key, and a
    duplicate of the new one (returned as it, marked a conflict)."""
    await powertools.start()
    install_hooks()
    url = powertools.config.database_url
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        oban = Oban(pool=pool, node="web-unique", queues={})
        old = await oban.enqueue(SyncAccount.new({"account_id": account_id}))
        async with powertools.db.connection() as conn:
            await conn.execute(  # its period (300 s) is over
                "UPDATE oban_jobs SET inserted_at = inserted_at - interval '10 minutes' "
                "WHERE id = %s",
                [old.id],
            )
        new = await oban.enqueue(SyncAccount.new({"account_id": account_id}))
        duplicate = await oban.enqueue(SyncAccount.new({"account_id": account_id}))
    return old, new, duplicate


async def test_the_job_page_shows_the_key_and_links_the_other_jobs_of_it(
    as_user: Client, powertools: Powertools
) -> None:
    old, new, duplicate = await old_and_new(powertools, 3)
    assert new.id != old.id and duplicate.id == new.id and duplicate.extra["conflict"]

    ops = as_user("ops-demo")
    page = await ops.get(f"{MOUNT}/jobs/{new.id}")
    assert page.status_code == 200
    html = page.text
    assert new.meta["unique_key"] in html
    assert "Blocks duplicates" in html and "now, while available" in html
    assert "period 300 s" in html
    assert f'href="{MOUNT}/jobs/{old.id}"' in html  # the job it replaced, linked

    older = (await ops.get(f"{MOUNT}/jobs/{old.id}")).text
    assert "no longer: its key is free" in older
    assert f'href="{MOUNT}/jobs/{new.id}"' in older and "holds the key" in older


async def test_the_forensics_bundle_names_the_key_and_the_job_holding_it(
    as_user: Client, powertools: Powertools
) -> None:
    from oban_powertools.display import Display
    from oban_powertools.forensics import build_bundle

    old, new, _ = await old_and_new(powertools, 4)
    bundle = await build_bundle(
        powertools.db, Display(powertools.config.display, "page"), "job", str(old.id)
    )
    text = " ".join(bundle.details)
    assert f"Unique by key {old.meta['unique_key']}" in text
    assert f"job {new.id} holds it now" in text
    assert any(p.href == f"/jobs/{new.id}" for p in bundle.next_paths)
