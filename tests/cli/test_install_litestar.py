"""``oban-powertools install`` in a freshly generated Litestar project: the plugin, not a
FastAPI mount; the patch only where it is unambiguous; re-running changes nothing."""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from oban_powertools.cli import main
from oban_powertools.install import MANIFEST_NAME
from oban_powertools.install.litestar import existing_wiring, plan_litestar_mount
from tests.cli.hostproject import host_imports, make_project, snapshot
from tests.web.test_contrib_litestar import crawl, lifespan_of

CONFIG = "myapp.powertools_config"
PLUGIN_IMPORT = "from oban_powertools.contrib.litestar import PowertoolsPlugin"

LITESTAR_MAIN = '''\
"""The host's web app."""

from litestar import Litestar, get


@get("/")
async def home() -> dict[str, str]:
    return {"hello": "world"}


app = Litestar(route_handlers=[home])
'''


def litestar_project(root: Path, main: str = LITESTAR_MAIN) -> Path:
    project = make_project(root, main=main)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "myapp"\nversion = "0.1.0"\n'
        'dependencies = ["litestar>=2.15", "oban-powertools[litestar]"]\n'
    )
    return project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = litestar_project(tmp_path / "host")
    with host_imports(root):
        yield root


def install(runner: CliRunner, project: Path, *args: str) -> Result:
    return runner.invoke(main, ["install", "--project-dir", str(project), *args])


def test_install_wires_the_plugin_into_the_litestar_app(runner: CliRunner, project: Path) -> None:
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    app = (project / "myapp" / "main.py").read_text()
    assert f"from {CONFIG} import powertools\n{PLUGIN_IMPORT}\n" in app
    assert "app = Litestar(route_handlers=[home], plugins=[PowertoolsPlugin(powertools)])" in app
    assert ".mount(" not in app and "FastAPI" not in app
    assert "patched      myapp/main.py" in result.output
    assert "added PowertoolsPlugin to `app = Litestar(...)`" in result.output
    assert "uvicorn myapp.main:app" in result.output
    # The plugin opens the pool itself: no lifespan left for the host to edit.
    assert "async with powertools" not in result.output
    assert "FastAPI" not in result.output and "app.mount" not in result.output
    manifest = json.loads((project / MANIFEST_NAME).read_text())
    assert manifest["mount"] == {"file": "myapp/main.py", "state": "applied"}
    assert manifest["config"] == f"{CONFIG}:build_config"


def test_rerunning_changes_nothing(runner: CliRunner, project: Path) -> None:
    assert install(runner, project).exit_code == 0
    before = snapshot(project)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    assert "Nothing changed" in result.output
    assert "unchanged    myapp/main.py" in result.output
    assert "already wires /ops/jobs in" in result.output
    assert "patched" not in result.output and "created" not in result.output


async def test_the_patched_app_serves_the_control_plane_below_the_mount(
    runner: CliRunner, project: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert install(runner, project).exit_code == 0
    monkeypatch.setenv("DATABASE_URL", db_url)
    module = importlib.import_module("myapp.main")
    powertools = importlib.import_module(CONFIG).powertools
    async with lifespan_of(module.app):
        assert not powertools.db.pool.closed  # opened by the app's lifespan
        transport = httpx.ASGITransport(app=module.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            # The starter seam denies everyone: 401, on the control plane's own page.
            refused = await http.get("/ops/jobs/")
            assert refused.status_code == 401 and "/ops/jobs/static/" in refused.text
            seen = await crawl(http, "/ops/jobs/", "/ops/jobs")
            assert any(url.startswith("/ops/jobs/static/") for url in seen), seen
            assert (await http.get("/")).json() == {"hello": "world"}
    assert powertools.db.pool.closed


def test_dry_run_writes_nothing_and_shows_the_patch(runner: CliRunner, project: Path) -> None:
    before = snapshot(project)
    result = install(runner, project, "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    assert "would patch  myapp/main.py" in result.output
    assert f"+{PLUGIN_IMPORT}" in result.output
    assert "+app = Litestar(route_handlers=[home], plugins=[PowertoolsPlugin(powertools)])" in (
        result.output
    )


def test_a_litestar_app_factory_gets_the_litestar_snippet(
    runner: CliRunner, tmp_path: Path
) -> None:
    factory = (
        "from litestar import Litestar\n\n\n"
        "def create_app() -> Litestar:\n    return Litestar(route_handlers=[])\n"
    )
    project = litestar_project(tmp_path / "factory", main=factory)
    result = install(runner, project, "--app", "myapp/main.py")
    assert result.exit_code == 0, result.output
    assert (project / "myapp" / "main.py").read_text() == factory
    assert "not patched: no top-level `app = Litestar(...)` found" in result.output
    assert "Add the mount to your app module by hand:" in result.output
    assert f"from {CONFIG} import powertools\n" in result.output
    assert PLUGIN_IMPORT in result.output
    assert "plugins=[PowertoolsPlugin(powertools)]" in result.output
    assert "FastAPI" not in result.output and "app.mount" not in result.output


def test_without_an_app_module_a_litestar_project_gets_the_litestar_snippet(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = litestar_project(tmp_path / "noapp")
    (project / "myapp" / "main.py").unlink()
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert "no app module found" in result.output
    assert "plugins=[PowertoolsPlugin(powertools)]" in result.output
    assert "FastAPI" not in result.output


def test_a_fastapi_project_still_gets_the_fastapi_snippet(
    runner: CliRunner, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "fastapi")
    (project / "myapp" / "main.py").unlink()
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert 'app.mount("/ops/jobs", powertools.asgi_app())' in result.output
    assert "PowertoolsPlugin" not in result.output


def patched(source: str) -> str:
    plan = plan_litestar_mount(source, CONFIG)
    assert plan.state == "patch" and plan.text is not None, plan.detail
    assert plan.lifespan
    assert existing_wiring(ast.parse(plan.text)) is not None
    return plan.text


def test_an_existing_plugins_list_gets_the_plugin_appended() -> None:
    source = (
        "from litestar import Litestar\n\n"
        "app = Litestar(\n    route_handlers=[],\n    plugins=[\n        Other(),\n    ],\n)\n"
    )
    text = patched(source)
    assert "        Other(), PowertoolsPlugin(powertools),\n    ],\n)" in text
    assert text.count("plugins=") == 1
    assert patched("from litestar import Litestar\napp = Litestar(plugins=[])\n").endswith(
        "app = Litestar(plugins=[PowertoolsPlugin(powertools)])\n"
    )


def test_an_empty_call_and_crlf_line_endings() -> None:
    text = patched("import litestar\r\napplication: litestar.Litestar = litestar.Litestar()\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert "litestar.Litestar(plugins=[PowertoolsPlugin(powertools)])\r\n" in text
    lines = text.splitlines()
    assert lines[1:3] == [f"from {CONFIG} import powertools", PLUGIN_IMPORT]
    assert lines[3].startswith("# oban-powertools: PowertoolsPlugin mounts")


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("from litestar import Litestar\napp = Litestar(**settings)\n", "Litestar(**...)"),
        ("app = Litestar(plugins=PLUGINS)\n", "is not a list literal"),
        ("app = Litestar()\nother = Litestar()\n", "more than one top-level"),
        ("def make():\n    return Litestar()\n", "no top-level `app = Litestar(...)`"),
        ("app = Litestar(\n", "does not parse"),
    ],
)
def test_what_it_will_not_patch(source: str, why: str) -> None:
    plan = plan_litestar_mount(source, CONFIG)
    assert plan.state == "manual" and plan.text is None
    assert why in plan.detail


@pytest.mark.parametrize(
    "source",
    [
        "app = Litestar(plugins=[PowertoolsPlugin(powertools)])\n",
        "app = Litestar(plugins=[contrib.PowertoolsPlugin(pt, path='/ops/jobs')])\n",
    ],
)
def test_existing_wiring_is_recognised(source: str) -> None:
    plan = plan_litestar_mount(source, CONFIG)
    assert plan.state == "present", plan.detail
