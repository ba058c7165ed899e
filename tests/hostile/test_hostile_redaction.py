"""Redaction end to end: with a policy that redacts ``password`` and ``api_key``, their
values appear in no page, no audit event, no forensics bundle (page or download), no JSON
API response, no bridged response and no log line the library writes, through a full
flow of browsing, acting (both surfaces) and scheduling, failures included."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

from oban_powertools import Powertools
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.display import Display
from oban_powertools.runtime.scheduler import CronScheduler
from tests.hostile.world import (
    OPERATOR,
    SECRET,
    RedactingDisplay,
    Upstream,
    client,
    csrf_for,
    seed_markers,
    token_in,
)
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, host_app, insert_job

USER = OPERATOR.username
# Each secret is in a different place: args, nested args, meta, an error, cron args, a
# job inserted by the scheduler, and the row a failing insert quotes back.
NESTED = "nested-hostile-secret"
META = "meta-hostile-secret"
API_KEY = "sk-live-hostile-secret"
BLOCKED = "blocked-entry-hostile-secret"
SECRETS = (SECRET, NESTED, META, API_KEY, BLOCKED)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "app/workers.py", line 12, in process\n'
    f"    client.login(user, password='{SECRET}')\n"
    f"RuntimeError: login failed for {{'user': 'ana', 'password': '{NESTED}'}}"
)
T0 = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


class Leader:
    is_leader = True


class Records(logging.Handler):
    """Every record, formatted as a log file would hold it (tracebacks included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def library_logs() -> Iterator[Records]:
    logger = logging.getLogger("oban_powertools")
    handler = Records()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def pool_idle(pt: Powertools) -> bool:
    """Every connection of the library's pool is back in it and nobody waits for one."""
    stats = pt.db.pool.get_stats()
    return stats.get("requests_waiting", 0) == 0 and stats.get("pool_available", 0) == stats.get(
        "pool_size", 0
    )


def assert_clean(text: str, where: str) -> None:
    found = [s for s in SECRETS if s in text]
    assert found == [], (where, found)


async def seed_secrets(conn: Any) -> dict[str, int]:
    await seed_markers(conn)  # nightly_sync holds SECRET in its args
    jobs = {
        "retryable": await insert_job(
            conn,
            state="retryable",
            worker="app.SendEmail",
            queue="mailers",
            args={"to": "ana@example.com", "password": SECRET, "account": {"password": NESTED}},
            meta={"password": META},
            errors=[{"attempt": 1, "at": "2030-01-01T00:00:00+00:00", "error": TRACEBACK}],
            attempt=1,
        ),
        "available": await insert_job(
            conn, state="available", queue="mailers", args={"api_key": API_KEY}
        ),
        "discarded": await insert_job(
            conn,
            state="discarded",
            queue="mailers",
            args={"password": SECRET},
            errors=[{"attempt": 20, "at": "2030-01-01T00:00:00+00:00", "error": TRACEBACK}],
            attempt=20,
        ),
    }
    for name, queue, args in (
        ("secret_every_minute", "default", {"password": SECRET, "api_key": API_KEY}),
        ("secret_blocked", "blocked_q", {"api_key": BLOCKED, "note": "x"}),
    ):
        await upsert_entry(
            conn,
            CronEntrySpec(
                name=name, worker="app.Sync", expression="* * * * *", queue=queue, args=args
            ),
        )
    # The host's database refuses jobs on one queue. PostgreSQL's error then quotes the
    # whole refused row in its DETAIL: args, secret and all.
    await conn.execute(
        "ALTER TABLE oban_jobs ADD CONSTRAINT hostile_blocked_queue CHECK (queue <> 'blocked_q')"
    )
    return jobs


async def test_a_redacted_value_leaves_through_no_surface(
    bridged: Powertools, upstream: Upstream, conn: Any
) -> None:
    jobs = await seed_secrets(conn)
    policy = bridged.config.display
    assert isinstance(policy, RedactingDisplay)
    app = host_app(bridged)
    responses: list[tuple[str, httpx.Response]] = []

    with library_logs() as logs:
        # The scheduler fires the secret entries (one fails on the refusing database),
        # and later resumes an expiring pause on its own.
        scheduler = CronScheduler(bridged.db, leader=Leader(), node="node-redaction")
        first = await scheduler.evaluate(now=T0 + timedelta(seconds=5))
        assert first.enqueued >= 1 and first.failed == ["secret_blocked"]

        async with client(app, USER) as ops:

            async def get(path: str, **params: str) -> httpx.Response:
                response = await ops.get(MOUNT + path, params=params)
                responses.append((f"GET {path} {params}", response))
                return response

            async def act_web(action: str, target: str, **params: str) -> None:
                form = {"csrf_token": csrf_for(USER), "action": action, "target": target}
                form.update({f"param.{k}": v for k, v in params.items()})
                panel = await ops.post(f"{MOUNT}/actions/preview", data=form)
                responses.append((f"preview {action}", panel))
                assert panel.status_code == 200, panel.text
                done = await ops.post(
                    f"{MOUNT}/actions/confirm",
                    data={
                        "csrf_token": csrf_for(USER),
                        "token": token_in(panel.text),
                        "reason": f"redaction flow {action}",
                    },
                )
                assert done.status_code == 303, done.text
                await get(done.headers["location"].removeprefix(MOUNT))

            async def act_api(action: str, targets: list[str], **params: str) -> None:
                made = await ops.post(
                    f"{MOUNT}/api/actions/preview",
                    json={"action": action, "targets": targets, "params": params},
                )
                responses.append((f"api preview {action}", made))
                assert made.status_code == 201, made.text
                token = made.json()["token"]
                shown = await ops.get(f"{MOUNT}/api/previews/{token}")
                responses.append(("api show preview", shown))
                done = await ops.post(
                    f"{MOUNT}/api/actions/confirm",
                    json={"token": token, "reason": f"redaction flow {action}"},
                )
                responses.append((f"api confirm {action}", done))
                assert done.status_code == 200, done.text
                again = await ops.post(
                    f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": "again"}
                )
                responses.append(("api confirm again", again))
                assert again.status_code == 409

            await act_web("retry_job", str(jobs["retryable"]))
            await act_web("run_cron_entry", "secret_every_minute")
            await act_web("pause_cron_entry", "nightly_sync")
            await act_api("discard_job", [str(jobs["available"])])
            await act_api("pause_cron_entry", ["secret_every_minute"], expires_in_minutes="1")
            await act_api("retry_job", [str(jobs["discarded"]), str(jobs["available"])])
            refused = await ops.post(
                f"{MOUNT}/api/actions/preview",
                json={"action": "retry_job", "targets": [str(jobs["retryable"])]},
            )
            responses.append(("api refused", refused))
            assert refused.status_code == 409

            # The pause expires; the scheduler resumes it (a system audit event).
            later = await scheduler.evaluate(now=datetime.now(UTC) + timedelta(minutes=3))
            assert later.resumed == ["secret_every_minute"]

            cur = await conn.execute("SELECT id FROM oban_jobs ORDER BY id")
            every_job = [str(r["id"]) for r in await cur.fetchall()]
            for path in ("/", "/cron", "/queues", "/jobs", "/audit", "/forensics", "/oban"):
                await get(path)
            for name in ("nightly_sync", "secret_every_minute", "secret_blocked"):
                await get(f"/cron/{name}")
                await get("/forensics", resource_type="cron_entry", resource_id=name)
                await get("/forensics/bundle.json", resource_type="cron_entry", resource_id=name)
            for job in every_job:
                await get(f"/jobs/{job}")
                await get("/forensics", resource_type="job", resource_id=job)
                await get("/forensics/bundle.json", resource_type="job", resource_id=job)
            for queue in ("mailers", "default", "blocked_q"):
                await get("/jobs", queue=queue)
                await get("/forensics", resource_type="queue", resource_id=queue)
            for search in ("ana", SECRET[:6], "password"):
                await get("/jobs", q=search)
            cur = await conn.execute("SELECT id FROM powertools_audit_events ORDER BY id")
            for row in await cur.fetchall():
                await get(f"/audit/{row['id']}")
            for path in ("/oban/", "/oban/jobs/1", "/oban/jobs/1/log"):
                bridged_page = await get(path)
                assert bridged_page.status_code == 200
        # Whatever the library still does in the background (a connection going back to
        # its pool, or being replaced) ends before its log is read.
        await eventually(lambda: pool_idle(bridged), what="the library's pool is idle")

    assert len(responses) >= 60
    for where, response in responses:
        assert response.status_code < 500, where
        text = response.text
        if where.startswith("GET /forensics/bundle.json"):
            text = json.dumps(response.json(), ensure_ascii=False)
        assert_clean(text, where)
    # Redacted where shown, not merely absent: the pages did render the records.
    detail = next(r for w, r in responses if w.startswith(f"GET /jobs/{jobs['retryable']} "))
    assert "[redacted]" in detail.text and "ana@example.com" in detail.text
    bridged_text = next(r for w, r in responses if w.startswith("GET /oban/jobs/1 "))
    assert bridged_text.json()["args"]["password"] == "[redacted]"

    # Audit events (the rows themselves), previews and slot records hold none either.
    for table in ("powertools_audit_events", "powertools_previews", "powertools_cron_slots"):
        cur = await conn.execute(
            psycopg.sql.SQL("SELECT * FROM {}").format(psycopg.sql.Identifier(table))
        )
        rows = await cur.fetchall()
        assert rows, table
        assert_clean(json.dumps(rows, default=str, ensure_ascii=False), table)
    cur = await conn.execute("SELECT detail FROM powertools_cron_slots WHERE outcome = 'failed'")
    (failed,) = await cur.fetchall()
    assert "CheckViolation" in failed["detail"]["error"]  # the error is recorded, its row not

    # The log lines the library wrote during all of it.
    assert any("secret_blocked" in line for line in logs.lines), logs.lines
    assert any("resumed" in line for line in logs.lines), logs.lines
    for line in logs.lines:
        assert_clean(line, "log")

    # The secrets are really in the database: the checks above were not vacuous.
    cur = await conn.execute(
        "SELECT count(*) AS n FROM oban_jobs WHERE args::text LIKE %s", (f"%{SECRET}%",)
    )
    assert (await cur.fetchone())["n"] >= 3
    assert {"page", "forensics", "bridge", "api"} <= policy.surfaces


def test_pairs_inside_a_value_the_policy_let_through_are_offered_too() -> None:
    """Free text (errors, bridged pages) quotes data as "key: value" pairs; a pair can sit
    inside another pair's value, and must be judged on its own."""
    display = Display(RedactingDisplay(), "bridge")
    texts = {
        f"args: password={SECRET} note=x": "args: password=[redacted] note=x",
        f"error: \"login failed for {{'password': '{SECRET}'}}\"": (
            "error: \"login failed for {'password': '[redacted]'}\""
        ),
        f"job=7 meta: api_key={API_KEY}": "job=7 meta: api_key=[redacted]",
    }
    for text, shown in texts.items():
        assert display.free_text("error", text) == shown
    html = f"<pre>args: %{{&quot;password&quot; =&gt; &quot;{SECRET}&quot;}}</pre>"
    scrubbed = display.scrub_pairs("bridge", html, html_escaped=True)
    assert SECRET not in scrubbed and "[redacted]" in scrubbed


SCRUB = settings(max_examples=300, deadline=None)
FILLER = st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=40).filter(
    lambda text: "hostile" not in text
)
NOTATIONS = (
    '"password": "{s}"',
    "'password': '{s}'",
    "password='{s}'",
    'password="{s}"',
    "password={s}",
    '"password" => "{s}"',
    "password: {s}",
    '{{"api_key": "{s}"}}',
    "api_key={s}",
)
WRAPS: dict[str, Callable[[str], str]] = {
    "as is": lambda pair: pair,
    "in parentheses": lambda pair: f"({pair})",
    "after another key": lambda pair: f"args: {pair}",
    "in a JSON string": json.dumps,
    "in a Python repr": repr,
    "in a JSON error field": lambda pair: json.dumps({"error": pair}),
    "JSON in JSON": lambda pair: json.dumps(json.dumps({"e": pair})),
    "in a repr of a dict": lambda pair: repr({"error": pair}),
}


@SCRUB
@given(
    before=FILLER,
    after=FILLER,
    notation=st.sampled_from(NOTATIONS),
    wrap=st.sampled_from(sorted(WRAPS)),
    escaped=st.booleans(),
)
def test_property_a_redacted_pair_is_caught_in_any_free_text(
    before: str, after: str, notation: str, wrap: str, escaped: bool
) -> None:
    """However an error message or a bridged page quotes a redacted field (any notation,
    nested in other strings, HTML-escaped), its value does not come out."""
    text = f"{before} {WRAPS[wrap](notation.format(s=SECRET))} {after}"
    display = Display(RedactingDisplay(), "bridge")
    if escaped:
        shown = html.unescape(
            display.scrub_pairs("bridge", html.escape(text, quote=True), html_escaped=True)
        )
    else:
        shown = display.free_text("error", text)
    assert SECRET not in shown, (text, shown)
    assert "[redacted]" in shown
