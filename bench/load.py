"""Load: N operators browsing and acting at once against the example host, over loopback.

    python -m bench.load [--operators 50] [--seconds 60] [--keep]

The example host runs as the demo runs it (tests/browser/conftest.py's live_host does the
same): a uvicorn web process and the worker process (oban queues, the scheduler leader), on
a scratch database cloned from nothing, migrated and seeded here. The server is
DATABASE_URL's, or a private 'load' cluster from tools/pgcluster.py.

Each operator signs in through the host's /login as ops-demo (its own session), takes the
CSRF token from the pages it reads, and for the whole run alternates browsing (every
page, filters, details, forensics, the JSON export) with audited actions through the
pages' forms: pausing and resuming its own cron entry and running it now, retrying and
cancelling its own jobs, and pausing or resuming the shared ``nightly_sync``, which all
operators contend for (a 409 "changed since the preview" or "already paused" there is the
pipeline working, counted as a conflict, not an error).

Reported: requests and errors (transport failures, 5xx, and any status other than the
expected ones), p50/p95/p99 latency per page and per action step, and the audit check:
every confirmed action (a 303 to its result page) has exactly one audit event, with the
token it was confirmed with, and no other action of the run left one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from examples.fastapi_host.launch import serve

ROOT = Path(__file__).resolve().parent.parent
MOUNT = "/ops/jobs"
USER, PASSWORD = "ops-demo", "demo"
JOBS_PER_OPERATOR = 40
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TOKEN = re.compile(r'name="token" value="([^"]+)"')
RESULT = re.compile(rf"{MOUNT}/actions/results/(\d+)$")


# -- the host ------------------------------------------------------------------------------


def server_url() -> str:
    if url := os.environ.get("DATABASE_URL"):
        return url
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pgcluster.py"), "start", "load", "--durable"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextmanager
def scratch_database(keep: bool) -> Iterator[str]:
    server = server_url()
    name = f"load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # a name generated here, not input
    try:
        yield with_database(server, name)
    finally:
        if not keep:
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def prepare(database_url: str, operators: int) -> None:
    """Migrate, seed the demo data, and give each operator its own entry and jobs."""
    from oban_powertools.db import migrate

    asyncio.run(migrate.apply(database_url))
    env = dict(os.environ, DATABASE_URL=database_url)
    subprocess.run(
        [sys.executable, "-m", "examples.fastapi_host.seed"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    mail = "examples.fastapi_host.workers.SendEmail"
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        for i in range(operators):
            conn.execute(
                "INSERT INTO powertools_cron_entries (name, source, worker, queue, expression) "
                "VALUES (%s, 'runtime', 'examples.fastapi_host.workers.NightlySync', "
                "'default', '0 0 1 1 *')",  # never due during a run
                (f"load_op_{i}",),
            )
            for state in ("discarded", "scheduled"):
                conn.execute(
                    "INSERT INTO oban_jobs (state, queue, worker, args, attempt, max_attempts, "
                    "scheduled_at, discarded_at, tags) "
                    "SELECT %(state)s::oban_job_state, 'mailers', %(worker)s, "
                    "jsonb_build_object('to', 'load' || %(op)s || '-' || n || '@example.com'), "
                    "CASE WHEN %(state)s = 'discarded' THEN 20 ELSE 0 END, 20, "
                    "timezone('UTC', now()) + interval '1 day', "
                    "CASE WHEN %(state)s = 'discarded' THEN timezone('UTC', now()) END, "
                    "ARRAY[%(tag)s] FROM generate_series(1, %(count)s) n",
                    {
                        "state": state,
                        "worker": mail,
                        "op": i,
                        "tag": f"load-op-{i}",
                        "count": JOBS_PER_OPERATOR // 2,
                    },
                )
        conn.execute("ANALYZE")


# -- the operators -------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conflicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    # Every action confirmed (303): its preview token and the audit event it points to.
    confirmed: list[tuple[str, int, str]] = field(default_factory=list)
    # Previews that were confirmed without success, or never confirmed.
    unapplied: list[str] = field(default_factory=list)

    def error(self, key: str, why: str) -> None:
        self.errors[key] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{key}: {why}")


class Operator:
    def __init__(
        self, index: int, base: str, database_url: str, stats: Stats, deadline: float
    ) -> None:
        self.index = index
        self.database_url = database_url
        self.stats = stats
        self.deadline = deadline
        self.entry = f"load_op_{index}"
        self.paused = False
        self.discarded: list[int] = []
        self.scheduled: list[int] = []
        self.csrf = ""
        self.rng = random.Random(index)
        self.http = httpx.AsyncClient(
            base_url=base,
            headers={"origin": base},
            timeout=httpx.Timeout(60.0),
            follow_redirects=False,
        )

    async def request(
        self, key: str, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kw: Any
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            self.stats.error(key, f"{type(exc).__name__}: {exc}")
            return None
        self.stats.latencies[key].append((time.perf_counter() - started) * 1000)
        if response.status_code in expect:
            if match := CSRF.search(response.text):
                self.csrf = match.group(1)
            return response
        if response.status_code == 409:
            self.stats.conflicts[key] += 1
            return response
        self.stats.error(key, f"{response.status_code} for {method} {path}")
        return None

    async def sign_in(self) -> None:
        response = await self.http.post(
            "/login", data={"username": USER, "password": PASSWORD, "next": f"{MOUNT}/"}
        )
        if response.status_code != 303:
            raise RuntimeError(f"operator {self.index} could not sign in: {response.status_code}")
        # Its own jobs, found the way an operator would: by the tag filter's ids.
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(
                "SELECT id, state::text FROM oban_jobs WHERE tags @> ARRAY[%s] ORDER BY id",
                (f"load-op-{self.index}",),
            )
            for job_id, state in await cur.fetchall():
                (self.discarded if state == "discarded" else self.scheduled).append(job_id)

    async def browse(self) -> None:
        job = self.rng.choice(self.discarded + self.scheduled or [1])
        path, key = self.rng.choice(
            [
                ("/", "GET /"),
                ("/cron", "GET /cron"),
                (f"/cron/{self.entry}", "GET /cron/{name}"),
                ("/cron/nightly_sync", "GET /cron/{name}"),
                ("/queues", "GET /queues"),
                ("/jobs", "GET /jobs"),
                ("/jobs?state=discarded&queue=mailers", "GET /jobs?filters"),
                (f"/jobs?tag=load-op-{self.index}", "GET /jobs?filters"),
                (f"/jobs/{job}", "GET /jobs/{id}"),
                ("/audit", "GET /audit"),
                (f"/audit?resource_type=cron_entry&resource_id={self.entry}", "GET /audit?filters"),
                ("/forensics", "GET /forensics"),
                (
                    f"/forensics?resource_type=cron_entry&resource_id={self.entry}",
                    "GET /forensics?subject",
                ),
                (f"/forensics?resource_type=job&resource_id={job}", "GET /forensics?subject"),
                (
                    "/forensics/bundle.json?resource_type=cron_entry&resource_id=nightly_sync",
                    "GET /forensics/bundle.json",
                ),
            ]
        )
        await self.request(key, "GET", MOUNT + path)

    async def act(self, action: str, target: str) -> bool:
        """Preview and confirm one action through the pages' forms; True if applied."""
        if not self.csrf:
            await self.request("GET /cron/{name}", "GET", f"{MOUNT}/cron/{self.entry}")
        panel = await self.request(
            f"preview {action}",
            "POST",
            f"{MOUNT}/actions/preview",
            data={"csrf_token": self.csrf, "action": action, "target": target},
        )
        if panel is None or panel.status_code != 200:
            return False
        match = TOKEN.search(panel.text)
        if match is None:
            self.stats.error(f"preview {action}", "no preview token in the panel")
            return False
        token = match.group(1)
        done = await self.request(
            f"confirm {action}",
            "POST",
            f"{MOUNT}/actions/confirm",
            expect=(303,),
            data={
                "csrf_token": self.csrf,
                "token": token,
                "reason": f"load test, operator {self.index}",
            },
        )
        if done is None or done.status_code != 303:
            self.stats.unapplied.append(token)
            return False
        location = done.headers.get("location", "")
        result = RESULT.search(location)
        if result is None:
            self.stats.error(f"confirm {action}", f"unexpected redirect {location!r}")
            return False
        self.stats.confirmed.append((token, int(result.group(1)), action))
        await self.request("GET /actions/results/{id}", "GET", location)
        return True

    async def act_once(self) -> None:
        choice = self.rng.random()
        if choice < 0.3:
            action = "resume_cron_entry" if self.paused else "pause_cron_entry"
            if await self.act(action, self.entry):
                self.paused = not self.paused
        elif choice < 0.45:
            await self.act("run_cron_entry", self.entry)
        elif choice < 0.65 and self.discarded:
            await self.act("retry_job", str(self.discarded.pop()))
        elif choice < 0.85 and self.scheduled:
            await self.act("cancel_job", str(self.scheduled.pop()))
        else:
            # The shared entry: whoever confirms first wins; the others get a 409.
            page = await self.request("GET /cron/{name}", "GET", f"{MOUNT}/cron/nightly_sync")
            paused = page is not None and ">Resume cron entry</button>" in page.text
            await self.act("resume_cron_entry" if paused else "pause_cron_entry", "nightly_sync")

    async def run(self) -> None:
        try:
            await self.sign_in()
            while time.monotonic() < self.deadline:
                if self.rng.random() < 0.7:
                    await self.browse()
                else:
                    await self.act_once()
        finally:
            await self.http.aclose()


async def drive(
    base: str, database_url: str, operators: int, seconds: float
) -> tuple[Stats, float]:
    stats = Stats()
    started = time.monotonic()
    deadline = started + seconds
    crowd = [Operator(i, base, database_url, stats, deadline) for i in range(operators)]
    await asyncio.gather(*(op.run() for op in crowd))
    return stats, time.monotonic() - started


# -- the audit check -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditCheck:
    confirmed: int
    events_for_confirmed: int
    missing: list[str]
    duplicated: list[str]
    mismatched: list[str]
    events_for_unapplied: int
    web_events_total: int

    @property
    def ok(self) -> bool:
        return (
            not self.missing
            and not self.duplicated
            and not self.mismatched
            and self.events_for_unapplied == 0
            and self.web_events_total == self.confirmed
        )


async def audit_check(database_url: str, stats: Stats) -> AuditCheck:
    tokens = [token for token, _id, _a in stats.confirmed]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT preview_token, id, command FROM powertools_audit_events "
            "WHERE preview_token = ANY(%s)",
            (tokens,),
        )
        found: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for token, event_id, command in await cur.fetchall():
            found[token].append((event_id, command))
        cur = await conn.execute(
            "SELECT count(*) FROM powertools_audit_events WHERE preview_token = ANY(%s)",
            (stats.unapplied,),
        )
        row = await cur.fetchone()
        unapplied_events = int(row[0]) if row else 0
        cur = await conn.execute(
            "SELECT count(*) FROM powertools_audit_events "
            "WHERE surface = 'web' AND outcome = 'succeeded' AND principal_id = %s",
            (USER,),
        )
        row = await cur.fetchone()
        web_total = int(row[0]) if row else 0
    missing = [t for t in tokens if not found.get(t)]
    duplicated = [t for t in tokens if len(found.get(t, [])) > 1]
    mismatched = [
        t
        for t, event_id, action in stats.confirmed
        if len(found.get(t, [])) == 1 and found[t][0] != (event_id, action)
    ]
    return AuditCheck(
        confirmed=len(tokens),
        events_for_confirmed=sum(len(found.get(t, [])) for t in tokens),
        missing=missing,
        duplicated=duplicated,
        mismatched=mismatched,
        events_for_unapplied=unapplied_events,
        web_events_total=web_total,
    )


# -- the report ----------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(stats: Stats, elapsed: float, check: AuditCheck, operators: int) -> str:
    total = sum(len(v) for v in stats.latencies.values())
    errors = sum(stats.errors.values())
    conflicts = sum(stats.conflicts.values())
    lines = [
        f"{operators} operators for {elapsed:.1f} s against the example host on loopback "
        f"(1 uvicorn process, Powertools pool of 5, worker process running)",
        f"requests: {total} ({total / elapsed:.0f}/s) · errors: {errors} · "
        f"expected conflicts (409): {conflicts}",
        "",
        f"{'page / action step':<34}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
        f"{'409':>6}{'errors':>8}",
    ]
    order = sorted(stats.latencies, key=lambda k: (not k.startswith("GET"), k))
    for key in order:
        samples = stats.latencies[key]
        lines.append(
            f"{key:<34}{len(samples):>7}{percentile(samples, 0.5):>10.1f}"
            f"{percentile(samples, 0.95):>10.1f}{percentile(samples, 0.99):>10.1f}"
            f"{stats.conflicts.get(key, 0):>6}{stats.errors.get(key, 0):>8}"
        )
    lines += [
        "",
        f"audit check: {check.confirmed} actions confirmed, {check.events_for_confirmed} "
        f"audit events for them; missing {len(check.missing)}, duplicated "
        f"{len(check.duplicated)}, pointing elsewhere {len(check.mismatched)}; events for "
        f"unapplied previews {check.events_for_unapplied}; web events by {USER} in all "
        f"{check.web_events_total} -> {'OK' if check.ok else 'FAILED'}",
    ]
    if stats.error_samples:
        lines += ["", "first errors:", *(f"  {s}" for s in stats.error_samples)]
    return "\n".join(lines)


async def run(operators: int, seconds: float, database_url: str, base: str) -> int:
    stats, elapsed = await drive(base, database_url, operators, seconds)
    check = await audit_check(database_url, stats)
    print(report(stats, elapsed, check, operators))
    return 0 if check.ok and not stats.errors else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="load-logs-") as logs:
        with scratch_database(args.keep) as database_url:
            prepare(database_url, args.operators)
            with serve(database_url, Path(logs)) as base:
                code = asyncio.run(run(args.operators, args.seconds, database_url, base))
            if code:
                for name in ("web", "worker"):
                    tail = (Path(logs) / f"{name}.log").read_text()[-3000:]
                    print(f"\n--- {name}.log (tail) ---\n{tail}")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
