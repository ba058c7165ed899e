"""The chain and batch pages: where a chain waits and why, the resume button only for
those allowed on a held chain, a batch's progress and its callbacks linked to their
jobs, the chain and batch sections of a job page; unknown keys and ids are 404s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from oban import Oban, worker
from psycopg_pool import AsyncConnectionPool

from oban_powertools import Powertools
from oban_powertools.batches import Batch
from oban_powertools.runtime.instance import install_hooks
from tests.web.helpers import MOUNT

Client = Callable[..., httpx.AsyncClient]


@worker(queue="web_chained")
class Sync:
    async def process(self, job: Any) -> None:
        return None


@worker(queue="web_callbacks")
class Report:
    async def process(self, job: Any) -> None:
        return None


async def held_chain(powertools: Powertools) -> list[Any]:
    """Three links of chain acct:7 inserted (no node runs them); the first then marked
    failed as an ack with on_failure hold leaves it."""
    await powertools.start()
    install_hooks()
    url = powertools.config.database_url
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        oban = Oban(pool=pool, node="web-chain", queues={})
        jobs: list[Any] = await oban.enqueue_many(
            *(Sync.new({"n": n}, chain="acct:7") for n in range(3))
        )
    async with powertools.db.connection() as conn:
        await conn.execute(
            "UPDATE oban_jobs SET state = 'discarded', discarded_at = now() WHERE id = %s",
            [jobs[0].id],
        )
        await conn.execute(
            "UPDATE powertools_chain_links SET outcome = 'discarded', finished_at = now() "
            "WHERE job_id = %s",
            [jobs[0].id],
        )
        await conn.execute("UPDATE powertools_chains SET state = 'held' WHERE key = 'acct:7'")
    return jobs


async def test_the_chain_page_says_where_it_waits_and_offers_resume(
    as_user: Client, powertools: Powertools
) -> None:
    jobs = await held_chain(powertools)
    page = await as_user("ops-demo").get(f"{MOUNT}/chains/acct:7")
    assert page.status_code == 200
    html = page.text
    assert f"Chain acct:7 is held at link 1 (job {jobs[0].id}, discarded)" in html
    assert f"Link after it: job {jobs[1].id}, suspended" in html
    for job in jobs:
        assert f'href="{MOUNT}/jobs/{job.id}"' in html
    assert 'value="resume_chain"' in html
    viewer = await as_user("ops-viewer").get(f"{MOUNT}/chains/acct:7")
    assert viewer.status_code == 200 and 'value="resume_chain"' not in viewer.text
    listing = await as_user("ops-viewer").get(f"{MOUNT}/chains", params={"state": "held"})
    assert f'href="{MOUNT}/chains/acct%3A7"' in listing.text
    assert (await as_user("ops-guest").get(f"{MOUNT}/chains/acct:7")).status_code == 403
    assert (await as_user("ops-demo").get(f"{MOUNT}/chains/nothing")).status_code == 404


async def test_a_waiting_link_s_job_page_names_the_link_it_waits_for(
    as_user: Client, powertools: Powertools
) -> None:
    jobs = await held_chain(powertools)
    html = (await as_user("ops-demo").get(f"{MOUNT}/jobs/{jobs[2].id}")).text
    assert (
        f"Link 3 of chain acct:7: waiting; the chain is held at link 1 (job {jobs[0].id}, "
        "discarded), which failed." in html
    )
    assert f'href="{MOUNT}/chains/acct%3A7"' in html


async def test_the_batch_pages_show_progress_and_callbacks(
    as_user: Client, powertools: Powertools
) -> None:
    await powertools.start()
    install_hooks()
    url = powertools.config.database_url
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        oban = Oban(pool=pool, node="web-batch", queues={})
        batch = Batch(name="nightly-import", on_completed=Report, on_exhausted=Report)
        jobs = await batch.add(Sync.new({}), Sync.new({})).enqueue(oban)
    ops = as_user("ops-viewer")
    listing = await ops.get(f"{MOUNT}/batches")
    assert listing.status_code == 200
    assert "nightly-import" in listing.text and "0 of 2 finished" in listing.text
    page = await ops.get(f"{MOUNT}/batches/{batch.id}")
    assert page.status_code == 200
    assert "waits for the batch to finish" in page.text
    assert f'href="{MOUNT}/jobs/{jobs[0].id}"' in page.text
    job_page = await ops.get(f"{MOUNT}/jobs/{jobs[1].id}")
    assert "One of the 2 jobs of batch nightly-import: 0 finished." in job_page.text
    assert f'href="{MOUNT}/batches/{batch.id}"' in job_page.text
    assert (await ops.get(f"{MOUNT}/batches/not-a-uuid")).status_code == 404
    assert (await ops.get(f"{MOUNT}/batches/{jobs[0].id:032x}")).status_code == 404


async def test_the_explainer_says_which_link_a_suspended_link_waits_for(
    powertools: Powertools,
) -> None:
    from oban_powertools.display import Display
    from oban_powertools.read_models.explain import explain

    jobs = await held_chain(powertools)
    display = Display(powertools.config.display)
    held = await explain(powertools.db, display, jobs[1].id)
    assert held is not None and held.waiting
    (reason,) = held.reasons
    assert reason.code == "chain_held"
    assert reason.title.startswith(
        f"Chain acct:7 is held at its failed link 1 (job {jobs[0].id}, state discarded)"
    )
    assert any(p.href == "/chains/acct%3A7" for p in reason.next_paths)
    async with powertools.db.connection() as conn:
        await conn.execute("UPDATE powertools_chains SET state = 'running' WHERE key = 'acct:7'")
        await conn.execute(
            "UPDATE oban_jobs SET state = 'executing', discarded_at = NULL WHERE id = %s",
            [jobs[0].id],
        )
    waiting = await explain(powertools.db, display, jobs[2].id)
    assert waiting is not None
    (reason,) = waiting.reasons
    assert reason.code == "chain_waiting"
    assert reason.title.startswith(
        f"It is waiting for link 1 (job {jobs[0].id}, state executing) of chain acct:7"
    )


async def test_the_forensics_bundle_of_a_link_names_its_chain(powertools: Powertools) -> None:
    from oban_powertools.display import Display
    from oban_powertools.forensics import build_bundle

    jobs = await held_chain(powertools)
    display = Display(powertools.config.display)
    bundle = await build_bundle(powertools.db, display, "job", str(jobs[1].id))
    assert "Link 2 of chain acct:7: waiting; the chain is held at link 1" in " ".join(
        bundle.details
    )
    assert any(p.href == "/chains/acct%3A7" for p in bundle.next_paths)
    assert bundle.diagnosis.startswith(f"Job {jobs[1].id} (suspended) is not running")
