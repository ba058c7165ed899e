"""State-changing requests: forged or unauthorized POSTs change nothing (checked in the DB)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from oban_powertools.web.security import Csrf
from tests.web.helpers import MOUNT, csrf_of, scalar, seed_cron, token_of

Client = Callable[..., httpx.AsyncClient]


async def state(conn: psycopg.AsyncConnection[Any]) -> dict[str, Any]:
    return {
        "paused": await scalar(conn, "SELECT paused FROM powertools_cron_entries"),
        "previews": await scalar(conn, "SELECT count(*) FROM powertools_previews"),
        "changes": await scalar(
            conn, "SELECT count(*) FROM powertools_audit_events WHERE outcome = 'succeeded'"
        ),
    }


UNCHANGED = {"paused": False, "previews": 0, "changes": 0}


async def test_forged_posts_change_nothing(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    real = csrf_of((await ops.get(f"{MOUNT}/cron")).text)
    form = {"action": "pause_cron_entry", "target": "nightly_sync"}

    # No token at all.
    response = await ops.post(f"{MOUNT}/actions/preview", data=form)
    assert response.status_code == 403
    assert "Nothing was changed" in response.text
    # A token signed with another secret, or minted for another operator.
    forged = Csrf("not-the-secret").token("ops-demo")
    other = Csrf("test-csrf-secret").token("ops-other")
    for token in (forged, other, "garbage", real + "x"):
        response = await ops.post(f"{MOUNT}/actions/preview", data={**form, "csrf_token": token})
        assert response.status_code == 403, token
    # A valid token, but posted from another site.
    cross = as_user("ops-demo", origin="https://evil.example")
    response = await cross.post(f"{MOUNT}/actions/preview", data={**form, "csrf_token": real})
    assert response.status_code == 403
    # Neither Origin nor Referer: refused too.
    bare = as_user("ops-demo", origin="")
    bare.headers.pop("origin")
    response = await bare.post(f"{MOUNT}/actions/preview", data={**form, "csrf_token": real})
    assert response.status_code == 403
    assert await state(conn) == UNCHANGED

    # The same request with a same-origin Referer and the real token goes through.
    referer = as_user("ops-demo", referer=f"http://testserver{MOUNT}/cron")
    referer.headers.pop("origin")
    response = await referer.post(f"{MOUNT}/actions/preview", data={**form, "csrf_token": real})
    assert response.status_code == 200


async def test_forged_confirm_changes_nothing(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    ops = as_user("ops-demo")
    csrf = csrf_of((await ops.get(f"{MOUNT}/cron")).text)
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "pause_cron_entry", "target": "nightly_sync"},
    )
    token = token_of(preview.text)
    forged = await ops.post(
        f"{MOUNT}/actions/confirm", data={"token": token, "reason": "upstream outage"}
    )
    assert forged.status_code == 403
    cross = as_user("ops-demo", origin="https://evil.example")
    forged = await cross.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": csrf, "token": token, "reason": "upstream outage"},
    )
    assert forged.status_code == 403
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False
    assert await scalar(conn, "SELECT status FROM powertools_previews") == "ready"


async def test_viewer_posts_change_nothing(
    as_user: Client, conn: psycopg.AsyncConnection[Any]
) -> None:
    await seed_cron(conn)
    viewer = as_user("ops-viewer")
    # The viewer gets no form, but a token can be minted for them (same secret, their id):
    # the server must still refuse, because the pipeline authorizes the action itself.
    token = Csrf("test-csrf-secret").token("ops-viewer")
    response = await viewer.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": token, "action": "pause_cron_entry", "target": "nightly_sync"},
    )
    assert response.status_code == 403
    assert "Not allowed to pause cron entry on cron_entry:nightly_sync" in response.text
    assert await state(conn) == UNCHANGED
    denied = await scalar(
        conn, "SELECT count(*) FROM powertools_audit_events WHERE action = 'security.denied'"
    )
    assert denied == 1  # the denial itself is evidence

    # Nor can the viewer confirm an operator's preview.
    ops = as_user("ops-demo")
    csrf = csrf_of((await ops.get(f"{MOUNT}/cron")).text)
    preview = await ops.post(
        f"{MOUNT}/actions/preview",
        data={"csrf_token": csrf, "action": "pause_cron_entry", "target": "nightly_sync"},
    )
    response = await viewer.post(
        f"{MOUNT}/actions/confirm",
        data={"csrf_token": token, "token": token_of(preview.text), "reason": "mine now"},
    )
    assert response.status_code == 403
    assert "belongs to another operator" in response.text
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False

    # A guest signed in without any access is refused the same way.
    guest = as_user("ops-guest")
    response = await guest.post(
        f"{MOUNT}/actions/preview",
        data={
            "csrf_token": Csrf("test-csrf-secret").token("ops-guest"),
            "action": "pause_cron_entry",
            "target": "nightly_sync",
        },
    )
    assert response.status_code == 403
    assert await scalar(conn, "SELECT paused FROM powertools_cron_entries") is False


def test_tokens_expire_and_are_bound_to_the_principal() -> None:
    csrf = Csrf("k", max_age=60)
    token = csrf.token("ops-demo", now=1000)
    assert csrf.verify(token, "ops-demo", now=1030)
    assert not csrf.verify(token, "ops-demo", now=1061)
    assert not csrf.verify(token, "ops-other", now=1030)
    assert not csrf.verify(token, "ops-demo", now=900)  # issued in the future
    assert not csrf.verify(None, "ops-demo")
    assert not csrf.verify("1000.", "ops-demo", now=1000)
    # Without a configured secret each process has its own: tokens do not cross over.
    assert not Csrf(None).verify(Csrf(None).token("ops-demo"), "ops-demo")
