"""`make demo` serves the example host and stops cleanly.

Runs ``tools/demo`` against a test database (DATABASE_URL given, so it starts no cluster
of its own): it must answer on its URL, run doctor, and on SIGTERM stop the web process
and the worker, leaving no connection behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import psycopg

from tests.support.db import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connections(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_demo_serves_and_stops_cleanly(fresh_db_url: str, tmp_path: object) -> None:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=fresh_db_url, PORT=str(port))
    log = ROOT / ".tmp" / "test-demo.log"
    log.parent.mkdir(exist_ok=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "tools/demo"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}/ops/jobs/"
        status = None
        while time.monotonic() - started < 120:
            assert proc.poll() is None, log.read_text()
            try:
                # Anonymous: the control plane sends the browser to the host's login page.
                status = httpx.get(url, follow_redirects=True, timeout=2).status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert status == 200, log.read_text()
        # The banner comes after doctor; give it a moment to print.
        deadline = time.monotonic() + 30
        while "demo is running" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        output = log.read_text()
        assert "ops-demo" in output and f"http://127.0.0.1:{port}/ops/jobs/" in output
        assert "migration(s) applied" in output and "seeded" in output
        assert connections(fresh_db_url) > 0  # web and worker are connected
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert "demo stopped" in log.read_text()
    deadline = time.monotonic() + 10
    while connections(fresh_db_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connections(fresh_db_url) == 0, "a demo process is still connected"
    try:
        httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
        raise AssertionError("the web process still answers after SIGTERM")
    except httpx.HTTPError:
        pass
