"""From ``pip install`` to a first audited pause, in a new FastAPI or plain Starlette host.

Everything the user runs comes from the fresh environment (the wheel with the ``fastapi``
extra, plus uvicorn as the host's own dependency), with the host project as the current
directory and no ``PYTHONPATH``: ``oban-powertools install``, ``migrate``, ``doctor``,
``uvicorn myapp.main:app`` and the host's worker. The starter auth seam denies everyone;
the test then writes the host's own rules into ``ops_auth.py``, as a developer would, and
an operator pauses a cron entry through the pages' preview → reason → confirm forms.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.wheel.fixtures import FreshEnvs
from tests.wheel.freshenv import FreshEnv
from tests.wheel.hosting import (
    HEADER_AUTH,
    JOBS,
    MOUNT,
    OPERATOR,
    WORKER,
    Processes,
    answers,
    first_audited_pause,
    free_port,
    has_cron_entry,
    has_leader,
    scalar,
)

pytestmark = pytest.mark.wheel

APPS = {
    "fastapi": '''\
"""The host's web app."""

from fastapi import FastAPI

app = FastAPI(title="My app")


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}
''',
    "starlette": '''\
"""The host's web app."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", home)])
''',
}


def scaffold(root: Path, framework: str) -> Path:
    """A new service as its developer has it before adding oban-powertools."""
    package = root / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(APPS[framework])
    (package / "jobs.py").write_text(JOBS)
    (package / "worker.py").write_text(WORKER)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "myapp"\nversion = "0.1.0"\n'
        f'dependencies = ["{framework}", "oban-powertools", "uvicorn"]\n'
    )
    return root


@pytest.fixture(scope="module")
def env(fresh_envs: FreshEnvs) -> FreshEnv:
    return fresh_envs(extras=("fastapi",), packages=("uvicorn",))


@pytest.mark.parametrize("framework", sorted(APPS))
def test_pip_install_to_a_first_audited_pause(
    env: FreshEnv, framework: str, fresh_db_url: str, tmp_path: Path
) -> None:
    project = scaffold(tmp_path / "host", framework)
    environ = env.environ(DATABASE_URL=fresh_db_url)

    def cli(*args: str) -> str:
        return env.check(["oban-powertools", *args], cwd=project, env=environ)

    installed = cli("install")
    assert "patched      myapp/main.py" in installed
    migrated = cli("migrate")
    assert "migration(s) applied" in migrated
    assert scalar(fresh_db_url, "SELECT to_regclass('public.oban_jobs') IS NOT NULL") is True

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = ["uvicorn", "myapp.main:app", "--host", "127.0.0.1", "--port", str(port)]
    with Processes(tmp_path / "logs") as processes:
        processes.start("web", env, web, cwd=project, environ=environ)
        worker = ["python", "-m", "myapp.worker"]
        processes.start("worker", env, worker, cwd=project, environ=environ)
        processes.wait_until(answers(f"{base}/"), within=30, what="the web process to answer")
        assert httpx.get(f"{base}/").json() == {"hello": "world"}
        # As generated, the starter seam denies everyone, whatever they send.
        denied = httpx.get(f"{base}{MOUNT}/", headers={"x-operator": OPERATOR})
        assert denied.status_code == 401

        # The host developer makes ops_auth.py theirs, and restarts the app.
        processes.stop("web")
        (project / "myapp" / "ops_auth.py").write_text(HEADER_AUTH)
        processes.start("web", env, web, cwd=project, environ=environ)
        processes.wait_until(answers(f"{base}/"), within=30, what="the web process to answer")
        processes.wait_until(has_leader(fresh_db_url), within=30, what="the worker to lead")
        processes.wait_until(
            has_cron_entry(fresh_db_url, "nightly_sync"),
            within=30,
            what="the runtime to store the declared cron entry",
        )

        report = json.loads(cli("doctor", "--url", f"{base}{MOUNT}/", "--json"))
        statuses = {c["name"]: c["status"] for c in report["checks"]}
        assert "fail" not in statuses.values(), report
        assert statuses["leader"] == "ok" and statuses["mount"] == "ok", report

        assert httpx.get(f"{base}{MOUNT}/").status_code == 401  # still nobody without a header
        first_audited_pause(base, fresh_db_url, entry="nightly_sync", reason="upstream outage")
