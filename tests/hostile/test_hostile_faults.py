"""Faults: the database restarting under a session and under the scheduler, a database
error inside the pipeline's transaction, a database that refuses the audit insert, a
leader killed without resigning, and a target that changes between preview and confirm.

The restarts happen to a throwaway PostgreSQL cluster of this module's own (from
tools/pgcluster.py, under a unique name), stopped and started again on the same port with
pg_ctl; the suite's shared cluster is never touched.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from oban_powertools import Powertools
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.db import Database, migrate
from oban_powertools.runtime.scheduler import CronScheduler
from tests.hostile.leader_node import WallClock, node, short_leases
from tests.hostile.world import (
    OPERATOR,
    OTHER_OPERATOR,
    assert_security_headers,
    build,
    client,
    csrf_for,
    seed_markers,
    token_in,
)
from tests.support.db import ROOT, admin_execute, with_database
from tests.support.seams import make_powertools
from tests.support.waiting import eventually
from tests.web.helpers import MOUNT, host_app, insert_job

USER = OPERATOR.username
T0 = datetime(2031, 5, 6, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _pgcluster() -> Any:
    spec = importlib.util.spec_from_file_location("pgcluster", ROOT / "tools" / "pgcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Cluster:
    """A private cluster this module may stop and start at will."""

    name: str
    tool: Any
    server_url: str
    template_url: str

    @property
    def home(self) -> Path:
        return Path(self.tool._home(self.name))

    @property
    def port(self) -> int:
        return int((self.home / "port").read_text())

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.tool._run_as(), str(self.tool._bindir() / "pg_ctl"), "-D"]
        subprocess.run(
            [*command, str(self.home / "data"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def crash(self) -> None:
        """Stop without a checkpoint or goodbye to the clients, as a crash would."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start again on the same port, so clients reconnect to the same address."""
        # synchronous_commit on (pgcluster turns it off for speed): with it off, a crash
        # loses the last commits by design, which is not the fault under test. fsync can
        # stay off: the operating system, which keeps the written pages, does not crash.
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=on -c max_connections=100"
        )
        log = str(self.home / "server.log")
        self._pg_ctl("-l", log, "-o", options, "-w", "-t", "60", "start")

    def database(self) -> str:
        name = f"f_{uuid.uuid4().hex[:10]}"
        admin_execute(self.server_url, f"CREATE DATABASE {name} TEMPLATE faults_template")
        return with_database(self.server_url, name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    tool = _pgcluster()
    name = f"hostile-fault-{uuid.uuid4().hex[:8]}"
    server_url = tool.start(name)
    home = Path(tool._home(name))
    try:
        cluster = Cluster(name, tool, server_url, "")
        cluster._pg_ctl("-m", "fast", "-w", "stop")
        cluster.restart()  # with this module's settings
        admin_execute(server_url, "CREATE DATABASE faults_template")
        template = with_database(server_url, "faults_template")
        asyncio.run(migrate.apply(template))
        cluster.template_url = template
        yield cluster
    finally:
        tool.stop(name)
        shutil.rmtree(home, ignore_errors=True)
        (ROOT / ".tmp" / f"pg-{name}.home").unlink(missing_ok=True)
        shutil.rmtree(ROOT / ".tmp" / f"pg-{name}", ignore_errors=True)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as conn:
        yield conn


async def test_pages_answer_503_while_the_database_is_down_then_recover(
    cluster: Cluster,
) -> None:
    url = cluster.database()
    async with connect(url) as conn:
        await seed_markers(conn)
    # A short pool timeout: while the database is down a request waits at most that long.
    powertools = build(url, pool_timeout=0.5)
    app = host_app(powertools)
    try:
        async with client(app, USER) as ops:
            assert (await ops.get(f"{MOUNT}/cron")).status_code == 200
            panel = await ops.post(
                f"{MOUNT}/actions/preview",
                data={
                    "csrf_token": csrf_for(USER),
                    "action": "pause_cron_entry",
                    "target": "nightly_sync",
                },
            )
            token = token_in(panel.text)

            cluster.crash()
            try:
                for path in ("/", "/cron/nightly_sync", "/audit"):
                    down = await ops.get(MOUNT + path)
                    assert down.status_code == 503, (path, down.text[:300])
                    assert "Database unavailable" in down.text
                    assert "works again by itself once the database is back" in down.text
                    assert down.headers["retry-after"] == "5"
                    assert_security_headers(down)
                poll = await ops.get(
                    f"{MOUNT}/cron", headers={"hx-request": "true", "hx-target": "live"}
                )
                # A polling fragment keeps what the page shows and polls on.
                assert poll.status_code == 503 and poll.headers["hx-reswap"] == "none"
                api = await ops.get(f"{MOUNT}/api/previews/{token}")
                assert api.status_code == 503
                assert api.json()["error"]["code"] == "database_unavailable"
                assert_security_headers(api)
                confirm = await ops.post(
                    f"{MOUNT}/actions/confirm",
                    data={"csrf_token": csrf_for(USER), "token": token, "reason": "in outage"},
                )
                assert confirm.status_code == 503
                # Whether a confirm that lost its connection committed cannot be known
                # here: the operator is sent to the audit log, the record of what happened.
                assert "Check the" in confirm.text and "audit log" in confirm.text
                api_confirm = await ops.post(
                    f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": "in outage"}
                )
                assert api_confirm.status_code == 503
                assert "check the audit log" in api_confirm.json()["error"]["message"]
                assert "Nothing could be read or changed" not in confirm.text
            finally:
                cluster.restart()

            async def back() -> bool:
                return (await ops.get(f"{MOUNT}/cron")).status_code == 200

            # Nobody restarts the app: the pool replaces its broken connections.
            await eventually(back, within=30, what="pages answer again after the restart")
            for path in ("/", "/jobs", "/audit", "/forensics"):
                assert (await ops.get(MOUNT + path)).status_code == 200, path
            # Nothing was applied during the outage; the preview is still good.
            done = await ops.post(
                f"{MOUNT}/actions/confirm",
                data={"csrf_token": csrf_for(USER), "token": token, "reason": "after outage"},
            )
            assert done.status_code == 303, done.text
    finally:
        await powertools.stop()
    async with connect(url) as conn:
        cur = await conn.execute(
            "SELECT action, reason FROM powertools_audit_events WHERE outcome = 'succeeded' "
            "AND principal_id = 'ops-demo' AND preview_token IS NOT NULL"
        )
        assert await cur.fetchall() == [{"action": "cron.paused", "reason": "after outage"}]


async def test_a_host_started_while_the_database_is_down_answers_503_then_recovers(
    cluster: Cluster,
) -> None:
    """Mounted apps open their pool on the first request: that first open fails too."""
    url = cluster.database()
    powertools = build(url, pool_timeout=0.5)
    app = host_app(powertools)
    try:
        cluster.crash()
        try:
            async with client(app, USER) as ops:
                page = await ops.get(f"{MOUNT}/cron")
                assert page.status_code == 503 and "Database unavailable" in page.text
                api = await ops.get(f"{MOUNT}/api/previews/some-token")
                assert api.status_code == 503
        finally:
            cluster.restart()
        async with client(app, USER) as ops:

            async def back() -> bool:
                return (await ops.get(f"{MOUNT}/cron")).status_code == 200

            await eventually(back, within=30, what="the first pool open after the restart")
    finally:
        await powertools.stop()


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep_until(self, target: datetime, stopping: asyncio.Event, limit: float) -> None:
        try:
            await asyncio.wait_for(stopping.wait(), timeout=limit)
        except TimeoutError:
            pass


class Leader:
    is_leader = True


async def job_minutes(conn: psycopg.AsyncConnection[Any], name: str) -> list[datetime]:
    cur = await conn.execute(
        "SELECT meta->>'cron_at' AS at FROM oban_jobs WHERE meta->>'cron_name' = %s", (name,)
    )
    return sorted(datetime.fromisoformat(r["at"]) for r in await cur.fetchall())


async def test_the_scheduler_resumes_after_a_database_restart_without_gaps_or_doubles(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    url = cluster.database()
    async with connect(url) as conn:
        # catch_up "none": a minute treated as downtime would be skipped, so only the
        # grace window's late firing can bring every minute in.
        await upsert_entry(
            conn,
            CronEntrySpec(name="every_minute", worker="app.W", expression="* * * * *"),
        )
    clock = ManualClock(T0 + timedelta(seconds=5))

    def failures() -> int:
        return sum("cron scheduler on solo failed" in r.getMessage() for r in caplog.records)

    database = Database(url, timeout=1.0)
    await database.open()
    scheduler = CronScheduler(
        database, leader=Leader(), node="solo", clock=clock, poll_interval=0.02
    )
    await scheduler.start()

    async def evaluated(minute: datetime) -> None:
        clock.current = minute + timedelta(seconds=5)

        async def done() -> bool:
            last = scheduler.last_evaluation
            return last is not None and last.minute == minute

        await eventually(done, within=30, what=f"evaluation of {minute}")

    try:
        for i in range(4):
            await evaluated(T0 + i * MINUTE)
        cluster.crash()
        try:
            # Two minutes pass with the database gone: the loop keeps failing and retrying.
            for minute in (4, 5):
                clock.current = T0 + minute * MINUTE + timedelta(seconds=5)
                seen = failures()
                await eventually(
                    lambda seen=seen: failures() >= seen + 2,
                    within=30,
                    what=f"two failed ticks at minute {minute}",
                )
            assert scheduler.running
        finally:
            cluster.restart()
        for i in range(6, 9):
            await evaluated(T0 + i * MINUTE)
    finally:
        await scheduler.stop()
        await database.close()
    async with connect(url) as conn:
        assert await job_minutes(conn, "every_minute") == [T0 + i * MINUTE for i in range(9)]
        cur = await conn.execute(
            "SELECT slot_at, kind, outcome, detail FROM powertools_cron_slots ORDER BY slot_at"
        )
        slots = await cur.fetchall()
    assert [(s["kind"], s["outcome"]) for s in slots] == [("scheduled", "enqueued")] * 9
    # The outage's first minute fired once the database was back, as a late one (the
    # second is late or current, depending on which minute the database came back in).
    assert slots[4]["detail"].get("late") is True


class FlakyDatabase(Database):
    """A real database whose chosen transactions fail as a dropped connection would."""

    def __init__(self, url: str, failing: set[int]) -> None:
        super().__init__(url)
        self.failing = failing
        self.calls = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.calls += 1
        if self.calls in self.failing:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        async with super().transaction() as conn:
            yield conn


async def test_a_transient_database_error_loses_no_slot(db_url: str) -> None:
    async with Database(db_url) as plain, plain.transaction() as conn:
        await upsert_entry(
            conn, CronEntrySpec(name="every_minute", worker="app.W", expression="* * * * *")
        )
    # Transaction 1 expires pauses; 2 claims the entries together, 3 the entry alone.
    # With both claims failing and the database back for the next statement, recording
    # the minute as 'failed' would succeed and lose the slot for good.
    flaky = FlakyDatabase(db_url, failing={2, 3})
    await flaky.open()
    try:
        scheduler = CronScheduler(flaky, leader=Leader(), node="solo")
        with pytest.raises(psycopg.OperationalError):
            await scheduler.evaluate(now=T0 + timedelta(seconds=5))
        again = await scheduler.evaluate(now=T0 + timedelta(seconds=6))
        assert again.enqueued == 1 and again.failed == []
    finally:
        await flaky.close()
    async with connect(db_url) as conn:
        cur = await conn.execute("SELECT slot_at, outcome FROM powertools_cron_slots")
        assert await cur.fetchall() == [{"slot_at": T0, "outcome": "enqueued"}]
        assert await job_minutes(conn, "every_minute") == [T0]


async def test_a_refused_audit_insert_rolls_the_web_action_back(pt: Powertools, conn: Any) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    async with client(app, USER) as ops:
        tokens = []
        for _ in range(2):
            panel = await ops.post(
                f"{MOUNT}/actions/preview",
                data={
                    "csrf_token": csrf_for(USER),
                    "action": "run_cron_entry",
                    "target": "nightly_sync",
                },
            )
            tokens.append(token_in(panel.text))
        # A real database failure at the audit insert, not a mocked writer.
        await conn.execute(
            "CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN RAISE EXCEPTION 'audit store refuses writes'; END$$"
        )
        await conn.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON powertools_audit_events "
            "FOR EACH ROW EXECUTE FUNCTION fail_audit()"
        )
        cur = await conn.execute("SELECT count(*) AS n FROM oban_jobs")
        jobs_before = (await cur.fetchone())["n"]
        refused = await ops.post(
            f"{MOUNT}/actions/confirm",
            data={"csrf_token": csrf_for(USER), "token": tokens[0], "reason": "run it now"},
        )
        assert refused.status_code == 500
        assert_security_headers(refused)
        assert "Nothing was changed." in refused.text
        assert "no audit event was written" in refused.text
        assert "audit store refuses" not in refused.text  # the database's words stay in its log
        assert f'name="token" value="{tokens[0]}"' in refused.text  # confirm again from here
        api = await ops.post(
            f"{MOUNT}/api/actions/confirm", json={"token": tokens[1], "reason": "run it now"}
        )
        assert api.status_code == 500 and api.json()["error"]["code"] == "database_refused"

        cur = await conn.execute("SELECT count(*) AS n FROM oban_jobs")
        assert (await cur.fetchone())["n"] == jobs_before  # the run-now job rolled back too
        cur = await conn.execute("SELECT status FROM powertools_previews ORDER BY created_at")
        assert [r["status"] for r in await cur.fetchall()] == ["ready", "ready"]
        cur = await conn.execute(
            "SELECT count(*) AS n FROM powertools_audit_events WHERE preview_token IS NOT NULL"
        )
        assert (await cur.fetchone())["n"] == 0

        await conn.execute("DROP TRIGGER fail_audit ON powertools_audit_events")
        done = await ops.post(
            f"{MOUNT}/actions/confirm",
            data={"csrf_token": csrf_for(USER), "token": tokens[0], "reason": "run it now"},
        )
        assert done.status_code == 303
    cur = await conn.execute("SELECT count(*) AS n FROM oban_jobs")
    assert (await cur.fetchone())["n"] == jobs_before + 1


async def test_a_preview_whose_target_changed_is_drifted_and_applies_nothing(
    pt: Powertools, conn: Any
) -> None:
    await seed_markers(conn)
    job = await insert_job(conn, state="discarded", attempt=20, max_attempts=20)
    app = host_app(pt)
    async with client(app, USER) as ops:
        panels = {}
        for action, target in (("pause_cron_entry", "nightly_sync"), ("retry_job", str(job))):
            panel = await ops.post(
                f"{MOUNT}/actions/preview",
                data={"csrf_token": csrf_for(USER), "action": action, "target": target},
            )
            panels[action] = token_in(panel.text)
        # Meanwhile another operator pauses and resumes the entry: it looks as it did,
        # but it is not the state the preview showed (ABA), so the confirm must not apply.
        await pt.operator.pause_cron_entry(OTHER_OPERATOR, "nightly_sync", reason="quick check")
        await pt.operator.resume_cron_entry(OTHER_OPERATOR, "nightly_sync")
        # And the job is retried by someone else.
        await pt.operator.retry_jobs(OTHER_OPERATOR, [job])
        cur = await conn.execute(
            "SELECT * FROM powertools_cron_entries WHERE name = 'nightly_sync'"
        )
        entry_before = await cur.fetchone()
        cur = await conn.execute(
            "SELECT state, attempt, max_attempts FROM oban_jobs WHERE id = %s", (job,)
        )
        job_before = await cur.fetchone()

        for action, token in panels.items():
            response = await ops.post(
                f"{MOUNT}/actions/confirm",
                data={"csrf_token": csrf_for(USER), "token": token, "reason": "stale view"},
            )
            assert response.status_code == 409, (action, response.text[:300])
            assert "changed since the preview" in response.text
            assert_security_headers(response)
            again = await ops.post(
                f"{MOUNT}/api/actions/confirm", json={"token": token, "reason": "stale view"}
            )
            assert again.json()["error"]["code"] == "preview_drifted"
    cur = await conn.execute("SELECT * FROM powertools_cron_entries WHERE name = 'nightly_sync'")
    assert await cur.fetchone() == entry_before
    cur = await conn.execute(
        "SELECT state, attempt, max_attempts FROM oban_jobs WHERE id = %s", (job,)
    )
    assert await cur.fetchone() == job_before
    cur = await conn.execute(
        "SELECT status FROM powertools_previews WHERE actor_id = 'ops-demo' ORDER BY created_at"
    )
    assert [r["status"] for r in await cur.fetchall()] == ["drifted", "drifted"]
    cur = await conn.execute(
        "SELECT count(*) AS n FROM powertools_audit_events "
        "WHERE principal_id = 'ops-demo' AND preview_token IS NOT NULL"
    )
    assert (await cur.fetchone())["n"] == 0


async def test_a_leader_killed_without_resigning_is_replaced_with_one_job_per_minute(
    db_url: str, conn: Any
) -> None:
    """Node A runs in its own process and is SIGKILLed while it leads: no stop, no
    resignation, its lease simply lapses. Node B takes over; every simulated minute gets
    exactly one job across the handover."""
    await upsert_entry(
        conn,
        CronEntrySpec(
            name="every_minute",
            worker="app.W",
            expression="* * * * *",
            queue="cron",
            catch_up_policy="all",
        ),
    )
    speed = 60.0  # a simulated minute per real second
    start, t0_wall = T0 - timedelta(seconds=30), time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the loop is not blocked)
        [
            sys.executable,
            "-m",
            "tests.hostile.leader_node",
            db_url,
            "node-a",
            start.isoformat(),
            repr(t0_wall),
            repr(speed),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    b_oban: Any = None
    b_pool: Any = None
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == b"ready", line

        async def count(sql: str) -> int:
            cur = await conn.execute(sql)
            return int((await cur.fetchone())["n"])

        async def a_leads_and_fired() -> bool:
            return (
                await count(
                    "SELECT count(*) AS n FROM powertools_cron_slots WHERE claimed_by = 'node-a'"
                )
                >= 3
                and await count("SELECT count(*) AS n FROM oban_leaders WHERE node = 'node-a'") == 1
            )

        await eventually(a_leads_and_fired, within=30, what="node-a leads and fires")
        with short_leases():
            powertools = make_powertools(db_url)
            b_oban, b_pool = node(powertools, db_url, "node-b", WallClock(start, t0_wall, speed))
            await b_pool.open()
            await b_oban.start()
            assert not b_oban.is_leader
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

            async def b_took_over() -> bool:
                return (
                    b_oban.is_leader
                    and await count(
                        "SELECT count(*) AS n FROM powertools_cron_slots WHERE claimed_by = 'node-b'"
                    )
                    >= 3
                )

            await eventually(b_took_over, within=30, what="node-b takes over and fires")
            await b_oban.stop()
            await b_pool.close()
            b_oban = None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if b_oban is not None:
            await b_oban.stop()
            await b_pool.close()
    # The killed node left its lease behind (it never resigned) until it lapsed.
    minutes = await job_minutes(conn, "every_minute")
    assert len(minutes) >= 6
    assert minutes == [minutes[0] + i * MINUTE for i in range(len(minutes))], minutes
    cur = await conn.execute(
        "SELECT entry_name, slot_at FROM powertools_cron_slots GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert await cur.fetchall() == []
    cur = await conn.execute("SELECT DISTINCT claimed_by FROM powertools_cron_slots")
    assert {r["claimed_by"] for r in await cur.fetchall()} == {"node-a", "node-b"}
