"""Shared benchmark plumbing: a database per run, timing helpers, result records."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """DATABASE_URL's server, or the private 'bench' cluster (started if needed, with
    PostgreSQL's durability on, so commit costs are measured against a flushed WAL)."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pgcluster.py"), "start", "bench", "--durable"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@contextmanager
def scratch_database(prefix: str = "bench") -> Iterator[str]:
    server = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield _database_url(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _database_url(server: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@asynccontextmanager
async def seeded_database(jobs: int, *, keep: bool = False) -> AsyncIterator[str]:
    """A database seeded with ``jobs`` jobs (bench.seed). With ``keep`` it is named after
    the size and kept for the next run, which then only applies pending migrations: seeding
    10M jobs takes minutes, and a kept database also shows migrations running on a large
    table."""
    from bench.seed import seed
    from oban_powertools.db import migrate

    if not keep:
        with scratch_database() as url:
            await seed(url, jobs)
            yield url
        return
    server = server_url()
    name = f"bench_kept_{jobs}"
    url = _database_url(server, name)
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        exists = await cur.fetchone() is not None
    seeded = False
    if exists:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT to_regclass('bench_seeded') IS NOT NULL AND "
                "EXISTS (SELECT 1 FROM bench_seeded WHERE jobs = %s)",
                (jobs,),
            )
            row = await cur.fetchone()
            seeded = bool(row and row[0])
    if not seeded:
        async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
        await seed(url, jobs)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE bench_seeded (jobs bigint NOT NULL)")
            await conn.execute("INSERT INTO bench_seeded VALUES (%s)", (jobs,))
    else:
        ran = await migrate.apply(url)
        if ran:
            print(f"applied {', '.join(m.name for m in ran)} to the kept {jobs}-job database")
    yield url


@dataclass(frozen=True)
class Timing:
    label: str
    samples: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self) -> float:
        return (time.perf_counter() - self.started) * 1000


def machine() -> str:
    return (
        f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
        f"{platform.platform(terse=True)}"
    )


def ms(value: float) -> str:
    return f"{value:8.2f} ms"
