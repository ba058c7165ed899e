"""Running a real ``oban start`` until its node has recorded itself as a runtime node."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

START_WITHIN = 30.0


def query(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ObanStartRun:
    nodes: list[dict[str, Any]]  # powertools_runtime_nodes once the node recorded itself
    entries: list[dict[str, Any]]  # the cron entries stored by then
    returncode: int  # after SIGTERM
    output: str


def run_oban_start(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    db_url: str,
    also: str | None = None,
) -> ObanStartRun:
    """Start ``command`` (an ``oban start``), wait until a runtime node is recorded and
    the query ``also`` (if given) returns a row (or the process ends, or 30 s pass), read
    what it stored, then stop it with SIGTERM."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_WITHIN
        nodes: list[dict[str, Any]] = []
        while time.monotonic() < deadline and process.poll() is None:
            nodes = query(db_url, "SELECT name, node FROM powertools_runtime_nodes")
            if nodes and (also is None or query(db_url, also)):
                break
            time.sleep(0.2)
        entries = query(db_url, "SELECT name, source FROM powertools_cron_entries")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    return ObanStartRun(nodes, entries, process.returncode, output)
