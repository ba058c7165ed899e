"""From ``pip install "oban-powertools[litestar]"`` to a first audited pause in a new
Litestar host, everything from the fresh environment (the wheel with the ``litestar``
extra, uvicorn as the host's own dependency), the host project as the current directory
and no ``PYTHONPATH``. Install patches ``app = Litestar(...)`` with the plugin (mount and
lifespan); the rest is the same paved road as the Starlette hosts.
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
)

pytestmark = pytest.mark.wheel

APP = '''\
"""The host's web app."""

from litestar import Litestar, get


@get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}


app = Litestar(route_handlers=[home])
'''


def scaffold(root: Path) -> Path:
    package = root / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "main.py").write_text(APP)
    (package / "jobs.py").write_text(JOBS)
    (package / "worker.py").write_text(WORKER)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "myapp"\nversion = "0.1.0"\n'
        'dependencies = ["litestar", "oban-powertools[litestar]", "uvicorn"]\n'
    )
    return root


@pytest.fixture(scope="module")
def env(fresh_envs: FreshEnvs) -> FreshEnv:
    return fresh_envs(extras=("litestar",), packages=("uvicorn",))


def test_pip_install_to_a_first_audited_pause(
    env: FreshEnv, fresh_db_url: str, tmp_path: Path
) -> None:
    project = scaffold(tmp_path / "host")
    environ = env.environ(DATABASE_URL=fresh_db_url)

    def cli(*args: str) -> str:
        return env.check(["oban-powertools", *args], cwd=project, env=environ)

    installed = cli("install")
    assert "patched      myapp/main.py" in installed and "FastAPI" not in installed
    main = (project / "myapp" / "main.py").read_text()
    assert "plugins=[PowertoolsPlugin(powertools)]" in main
    assert "migration(s) applied" in cli("migrate")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = ["uvicorn", "myapp.main:app", "--host", "127.0.0.1", "--port", str(port)]
    (project / "myapp" / "ops_auth.py").write_text(HEADER_AUTH)
    with Processes(tmp_path / "logs") as processes:
        processes.start("web", env, web, cwd=project, environ=environ)
        processes.start(
            "worker", env, ["python", "-m", "myapp.worker"], cwd=project, environ=environ
        )
        processes.wait_until(answers(f"{base}/"), within=30, what="the web process to answer")
        assert httpx.get(f"{base}/").json() == {"hello": "world"}
        # Litestar hands a mounted app its own path; the plugin keeps the links below it.
        overview = httpx.get(f"{base}{MOUNT}/", headers={"x-operator": OPERATOR})
        assert overview.status_code == 200
        assert f'href="{MOUNT}/cron"' in overview.text and 'href="/cron"' not in overview.text
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

        first_audited_pause(base, fresh_db_url, entry="nightly_sync", reason="upstream outage")
