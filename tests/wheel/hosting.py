"""Running a host from a fresh environment, and the operator's first session over HTTP.

Framework-neutral: a host test scaffolds its own project (its app module, the way its
framework mounts ``/ops/jobs``), then uses :class:`Processes` to run the web and worker
processes from the fresh venv and :func:`first_audited_pause` to drive the control plane
as a browser would (plain HTTP: GET pages, POST forms with their CSRF token).

The auth seam a host developer writes in place of the deny-by-default starter is
:data:`HEADER_AUTH`: the actor comes from an ``x-operator`` header (a stand-in for the
host's session or SSO middleware). :data:`JOBS` and :data:`WORKER` are the host's jobs
module and worker process, the same for every framework.

Adding a host (Litestar, Django) is one test file, like ``test_starlette_hosts.py``::

    env = fresh_envs(extras=("litestar",), packages=("uvicorn",))   # session-shared
    project = scaffold(...)                 # the framework's app module, JOBS, WORKER
    env.check(["oban-powertools", "install"], cwd=project, env=environ)
    with Processes(tmp_path / "logs") as processes:
        processes.start("web", env, ["uvicorn", "myapp.app:app", ...], cwd=..., environ=...)
        processes.start("worker", env, ["python", "-m", "myapp.worker"], ...)
        ...
        first_audited_pause(base, database_url, entry="nightly_sync", reason="...")
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx
import psycopg

from tests.wheel.freshenv import FreshEnv

MOUNT = "/ops/jobs"
OPERATOR = "ops-demo"
OPERATOR_LABEL = "Ops Demo"
VIEWER = "ops-viewer"
STOP_GRACE = 15.0

HEADER_AUTH = '''\
"""The auth seam: who is acting, what they may do, how they are audited.

Our proxy signs operators in and passes their id in the x-operator header.
"""

from __future__ import annotations

from typing import Any

from oban_powertools import Principal, Resource

OPERATORS = {"ops-demo": "Ops Demo"}
VIEWERS = {"ops-viewer": "Ops Viewer"}


class PowertoolsAuth:
    def current_actor(self, request: Any) -> str | None:
        actor = request.headers.get("x-operator", "")
        return actor if actor in OPERATORS or actor in VIEWERS else None

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        if action.startswith("view_"):
            return actor in OPERATORS or actor in VIEWERS
        return actor in OPERATORS

    def audit_principal(self, actor: Any) -> Principal:
        label = OPERATORS.get(actor) or VIEWERS[actor]
        return Principal(id=actor, type="user", label=label)

    def actor_for_cli(self, actor_id: str) -> str | None:
        return actor_id if actor_id in OPERATORS else None
'''


# A host's jobs and worker process, the same for every ASGI framework: oban's own cron
# declaration, and the worker running Powertools' runtime (``**powertools.oban_options()``)
# from the ``powertools_config`` module install generates.
JOBS = '''\
"""The host's background jobs, with oban's own cron declaration."""

from oban import Job, worker


@worker(queue="default", cron="0 2 * * *")
class NightlySync:
    async def process(self, job: Job) -> None:
        return None
'''

WORKER = '''\
"""The host's worker process: queues, and the powertools runtime (scheduler, decisions)."""

import asyncio
import os
import signal

from oban import Oban

from myapp import jobs  # noqa: F401  (registers the workers and their cron)
from myapp.powertools_config import powertools


async def main() -> None:
    pool = await Oban.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=3)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with powertools:
            async with Oban(pool=pool, queues={"default": 2}, **powertools.oban_options()):
                print("worker started", flush=True)
                await stop.wait()
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """The host's processes, each in its own process group, all stopped on exit.

    Output goes to ``<logdir>/<name>.log``; a failure message quotes it.
    """

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        env: FreshEnv,
        args: Sequence[str | Path],
        *,
        cwd: Path,
        environ: dict[str, str],
    ) -> subprocess.Popen[bytes]:
        assert name not in self.running, f"{name} is already running"
        self.logdir.mkdir(parents=True, exist_ok=True)
        with self.log_path(name).open("ab") as log:
            process = subprocess.Popen(
                env.command(args),
                cwd=cwd,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopping it stops its children too
            )
        self.running[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}"
            for p in sorted(self.logdir.glob("*.log"))
        )

    def stop(self, name: str) -> int:
        process = self.running.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            try:
                self.stop(name)
            except ProcessLookupError:
                self.running.pop(name, None)

    def wait_until(self, check: Callable[[], bool], *, within: float, what: str) -> None:
        """Poll ``check`` until true; fail early (with the logs) when a process exits."""
        deadline = time.monotonic() + within
        while not check():
            dead = [n for n, p in self.running.items() if p.poll() is not None]
            if dead:
                raise AssertionError(
                    f"{', '.join(dead)} exited while waiting for {what}\n{self.logs()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {within} s: {what}\n{self.logs()}")
            time.sleep(0.05)


def answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            return False
        return True

    return check


def scalar(database_url: str, sql: str, *params: object) -> object:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def has_leader(database_url: str) -> Callable[[], bool]:
    return lambda: bool(
        scalar(
            database_url,
            "SELECT count(*) FROM oban_leaders WHERE expires_at > timezone('UTC', now())",
        )
    )


def has_cron_entry(database_url: str, name: str) -> Callable[[], bool]:
    return lambda: bool(
        scalar(database_url, "SELECT count(*) FROM powertools_cron_entries WHERE name = %s", name)
    )


# How an operator signs in to the host: HEADER_AUTH's proxy header by default; a host with
# its own sign-in (Django's session) passes a function that signs the client in.
type SignIn = Callable[[httpx.Client, str], None]


def header_sign_in(client: httpx.Client, actor: str) -> None:
    client.headers["x-operator"] = actor


@contextmanager
def browser(
    base: str, actor: str | None, sign_in: SignIn = header_sign_in
) -> Iterator[httpx.Client]:
    """A client that sends what a browser on this site sends: Origin on POST, the actor."""
    with httpx.Client(base_url=base, headers={"origin": base}, timeout=10.0) as client:
        if actor:
            sign_in(client, actor)
        yield client


def field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} field on the page"
    return match[1]


def first_audited_pause(
    base: str,
    database_url: str,
    *,
    entry: str,
    reason: str,
    sign_in: SignIn = header_sign_in,
    label: str = OPERATOR_LABEL,
) -> int:
    """An operator pauses ``entry`` through preview → reason → confirm; returns the event id.

    Checks what the operator sees at each step and that the audit page shows the event.
    """
    with browser(base, VIEWER, sign_in) as viewer:
        # A viewer sees the entry but may not act on it: the server asks the seam.
        page = viewer.get(f"{MOUNT}/cron/{entry}")
        assert page.status_code == 200 and entry in page.text
        assert ">Pause cron entry</button>" not in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        refused = viewer.post(
            f"{MOUNT}/actions/preview",
            data={
                "csrf_token": csrf[1] if csrf else "",
                "action": "pause_cron_entry",
                "target": entry,
            },
        )
        assert refused.status_code == 403, refused.text
    with browser(base, OPERATOR, sign_in) as ops:
        overview = ops.get(f"{MOUNT}/")
        assert overview.status_code == 200, overview.text
        cron = ops.get(f"{MOUNT}/cron")
        assert cron.status_code == 200 and entry in cron.text
        detail = ops.get(f"{MOUNT}/cron/{entry}")
        assert detail.status_code == 200
        assert ">Pause cron entry</button>" in detail.text

        preview = ops.post(
            f"{MOUNT}/actions/preview",
            data={
                "csrf_token": field(detail.text, "csrf_token"),
                "action": "pause_cron_entry",
                "target": entry,
                "return_to": f"/cron/{entry}",
            },
        )
        assert preview.status_code == 200, preview.text
        assert "Preview: Pause cron entry" in preview.text
        assert f"cron_entry:{entry}" in preview.text
        assert label in preview.text
        assert (
            scalar(
                database_url, "SELECT paused FROM powertools_cron_entries WHERE name = %s", entry
            )
            is False
        )

        confirmed = ops.post(
            f"{MOUNT}/actions/confirm",
            data={
                "csrf_token": field(preview.text, "csrf_token"),
                "token": field(preview.text, "token"),
                "reason": reason,
            },
        )
        assert confirmed.status_code == 303, confirmed.text
        location = confirmed.headers["location"]
        assert location.startswith(f"{MOUNT}/actions/results/")
        event_id = int(location.rsplit("/", 1)[1])

        result = ops.get(location)
        assert result.status_code == 200
        assert f"Audit event #{event_id}" in result.text

        audit = ops.get(f"{MOUNT}/audit")
        assert audit.status_code == 200
        assert "cron.paused" in audit.text and entry in audit.text
        assert label in audit.text and reason in audit.text
        event = ops.get(f"{MOUNT}/audit/{event_id}")
        assert event.status_code == 200 and reason in event.text
    row = scalar(
        database_url,
        "SELECT paused_by_id FROM powertools_cron_entries WHERE name = %s AND paused",
        entry,
    )
    assert row == OPERATOR, "the entry is not paused by the operator"
    return event_id
