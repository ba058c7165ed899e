"""Run the example host as ``make demo`` does: the worker process and the web process.

Used by the browser tests and the load script, so both exercise the host the way an
operator meets it (separate processes, real ports), started and stopped one way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(database_url: str, log_dir: Path, *, timeout: float = 30) -> Iterator[str]:
    """Start worker and web against ``database_url``; yield the base URL; stop both.

    Logs go to ``log_dir/worker.log`` and ``log_dir/web.log``; a process that exits early
    or a host that does not answer in ``timeout`` seconds raises with the log's tail.
    """
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    commands = {
        "worker": [sys.executable, "-m", "examples.fastapi_host.worker"],
        "web": [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_host.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            log = (log_dir / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the example host exited early:\n{_tails(log_dir)}")
            try:
                httpx.get(base + "/login", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the example host did not answer:\n{_tails(log_dir)}"
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _tails(log_dir: Path) -> str:
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(log_dir.glob("*.log"))
    )
