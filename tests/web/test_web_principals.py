"""A principal's stable id is shown beside its label wherever a principal appears.

Labels are not unique (two accounts may both be "Ops Demo"); the id (``ops-demo``) is what
auditors search and filter by. The test users have an id that differs from their label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from oban_powertools import DisplayContext
from tests.web.helpers import (
    MOUNT,
    build_powertools,
    client,
    csrf_of,
    host_app,
    insert_producer,
    seed_cron,
    token_of,
    visible_text,
)

Client = Callable[..., httpx.AsyncClient]
SHOWN = "Ops Demo (ops-demo)"


async def preview_and_confirm(
    ops: httpx.AsyncClient, action: str, target: str, reason: str
) -> tuple[str, str]:
    """Preview ``action`` on a native page, confirm it; (panel html, result location)."""
    page = await ops.get(f"{MOUNT}/cron/nightly_sync")
    csrf = csrf_of(page.text)
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": action, "target": target},
    )
    assert preview.status_code == 200, preview.text
    done = await ops.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token_of(preview.text), "reason": reason},
    )
    assert done.status_code == 303, done.text
    return preview.text, done.headers["location"]


async def test_every_page_shows_the_principal_id_beside_its_label(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    await insert_producer(conn, queue="mailers", node="web-1")
    ops = as_user("ops-demo")

    panel, result_at = await preview_and_confirm(
        ops, "pause_cron_entry", "nightly_sync", "upstream outage"
    )
    assert f"Acting operator {SHOWN}" in visible_text(panel)
    await preview_and_confirm(ops, "pause_queue", "mailers", "smtp relay down")

    event_id = result_at.rsplit("/", 1)[1]
    result = visible_text((await ops.get(result_at)).text)
    assert f"Actor {SHOWN} user" in result

    audit_html = (await ops.get(f"{MOUNT}/audit")).text
    audit = visible_text(audit_html)
    assert f"{SHOWN} user upstream outage" in audit
    assert f"{SHOWN} user smtp relay down" in audit
    # The principal links to the audit events of its id, not of its label.
    assert f'href="{MOUNT}/audit?actor=ops-demo"' in audit_html

    event = visible_text((await ops.get(f"{MOUNT}/audit/{event_id}")).text)
    assert f"on cron_entry:nightly_sync by {SHOWN}" in event
    assert f"Actor {SHOWN} user" in event

    assert f"by {SHOWN}" in visible_text((await ops.get(f"{MOUNT}/cron")).text)
    detail = visible_text((await ops.get(f"{MOUNT}/cron/nightly_sync")).text)
    assert f"Paused by {SHOWN}" in detail
    assert f"cron.paused {SHOWN} upstream outage" in detail  # the entry's recent audit rows

    assert f"decision by {SHOWN}" in visible_text((await ops.get(f"{MOUNT}/queues")).text)

    overview = visible_text((await ops.get(f"{MOUNT}/")).text)
    assert f"Paused by {SHOWN}" in overview  # the paused entry's and queue's diagnosis
    assert f"cron_entry:nightly_sync {SHOWN}" in overview  # recent operator actions

    subject = {"resource_type": "cron_entry", "resource_id": "nightly_sync"}
    forensics = visible_text((await ops.get(f"{MOUNT}/forensics", params=subject)).text)
    assert f"Paused by {SHOWN}" in forensics  # diagnosis and facts
    assert f"by {SHOWN}" in forensics.split("Chronology", 1)[1]
    queue_forensics = visible_text(
        (
            await ops.get(
                f"{MOUNT}/forensics", params={"resource_type": "queue", "resource_id": "mailers"}
            )
        ).text
    )
    assert f"Paused by {SHOWN}" in queue_forensics

    export = json.loads((await ops.get(f"{MOUNT}/forensics/bundle.json", params=subject)).text)
    actors = [item["actor"] for item in export["chronology"] if item["actor"]]
    assert {"id": "ops-demo", "label": "Ops Demo", "type": "user"} in actors


async def test_the_json_api_names_the_acting_principal(as_user: Client, conn: Any) -> None:
    await seed_cron(conn)
    response = await as_user("ops-demo").post(
        f"{MOUNT}/api/actions/preview",
        json={"action": "pause_cron_entry", "targets": ["nightly_sync"]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["actor"] == {"id": "ops-demo", "label": "Ops Demo"}


async def test_audit_filters_by_principal_id_not_label(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    # Two principals with the same label: only the id tells them apart.
    await conn.execute(
        """
        INSERT INTO powertools_audit_events (action, command, resource_type, resource_id,
            principal_id, principal_type, principal_label, reason, surface, outcome)
        VALUES ('queue.paused', 'pause_queue', 'queue', 'q1', 'ops-demo', 'user', 'Ops Demo',
                'first reason', 'cli', 'succeeded'),
               ('queue.resumed', 'resume_queue', 'queue', 'q1', 'ops-demo-2', 'user', 'Ops Demo',
                'second reason', 'cli', 'succeeded')
        """
    )
    ops = as_user("ops-demo")

    async def listed(**params: str) -> str:
        page = await ops.get(f"{MOUNT}/audit", params=params)
        assert page.status_code == 200
        return visible_text(page.text)

    both = await listed()
    assert f"{SHOWN} user first reason" in both
    assert "Ops Demo (ops-demo-2) user second reason" in both
    mine = await listed(actor="ops-demo")
    assert "first reason" in mine and "second reason" not in mine
    theirs = await listed(actor="ops-demo-2")
    assert "second reason" in theirs and "first reason" not in theirs
    # The filter is by id: a label matches nothing, however many principals carry it.
    by_label = await listed(actor="Ops Demo")
    assert "No audit event matches." in by_label


class IdMaskingDisplay:
    """A policy that shows principal ids as an opaque handle (a host hiding emails), in
    page values and inside snapshots alike."""

    fields = frozenset({"principal_id", "paused_by_id", "changed_by_id", "actor_id", "by_id"})

    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None:
        if context.field in self.fields and isinstance(value, str):
            return f"user#{len(value)}"
        return None


async def test_principal_ids_pass_the_display_policy(
    db_url: str, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    pt = build_powertools(db_url, display=IdMaskingDisplay())
    try:
        async with client(host_app(pt), "ops-demo") as ops:
            panel, result_at = await preview_and_confirm(
                ops, "pause_cron_entry", "nightly_sync", "upstream outage"
            )
            assert "Acting operator Ops Demo (user#8)" in visible_text(panel)
            pages = {
                "audit": f"{MOUNT}/audit",
                "event": f"{MOUNT}/audit/{result_at.rsplit('/', 1)[1]}",
                "cron": f"{MOUNT}/cron/nightly_sync",
                "overview": f"{MOUNT}/",
                "forensics": f"{MOUNT}/forensics?resource_type=cron_entry&resource_id=nightly_sync",
            }
            for name, path in pages.items():
                html = (await ops.get(path)).text
                assert "Ops Demo (user#8)" in visible_text(html), name
                found = re.search(r".{200}ops-demo\b.{50}", html, re.DOTALL)
                assert not found, (name, found and found.group(0))
    finally:
        await pt.stop()
