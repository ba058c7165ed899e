"""The private cluster tool: benchmark clusters keep PostgreSQL's durability settings.

Commit costs in bench/ are ratios to a bare commit; with fsync or synchronous_commit off
that floor is not the real one, so ``--durable`` must really turn them back on, also for
a cluster that is already running the fast way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

from tests.conftest import _load_pgcluster
from tests.support.db import ROOT

SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def _settings(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]
        ).fetchall()
    return {name: setting for name, setting in rows}


def test_durable_cluster_keeps_durability_and_fast_one_drops_it() -> None:
    cluster = _load_pgcluster()
    name = f"t-durable-{uuid.uuid4().hex[:8]}"
    pointer = ROOT / ".tmp" / f"pg-{name}.home"
    try:
        url = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "pgcluster.py"), "start", name, "--durable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert _settings(url) == {
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
        }

        # Asking for the fast mode restarts the running cluster with durability off.
        url = cluster.start(name)
        assert _settings(url) == {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        # And back: a running fast cluster is not reused for a benchmark.
        url = cluster.start(name, durable=True)
        assert _settings(url)["fsync"] == "on"
    finally:
        home = Path(pointer.read_text().strip()) if pointer.exists() else None
        cluster.stop(name)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        pointer.unlink(missing_ok=True)


def test_unknown_flag_is_refused_and_starts_nothing() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "pgcluster.py"), "start", "x", "--fast"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "usage" in out.stderr
    assert not (ROOT / ".tmp" / "pg-x.home").exists()
