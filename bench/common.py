"""Shared benchmark plumbing: a database per run, timing helpers, result records."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent


def server_url() -> str:
    """DATABASE_URL's server, or the private 'bench' cluster (started if needed)."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pgcluster.py"), "start", "bench"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@contextmanager
def scratch_database(prefix: str = "bench") -> Iterator[str]:
    from urllib.parse import urlsplit, urlunsplit

    server = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
