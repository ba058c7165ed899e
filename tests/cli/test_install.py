"""``oban-powertools install`` in a freshly generated FastAPI project."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from oban_powertools.cli import main
from oban_powertools.install import MANIFEST_NAME
from oban_powertools.install.manifest import content_hash
from tests.cli.hostproject import make_project, snapshot

STARTERS = ("ops_auth.py", "ops_display.py", "powertools_config.py")


def install(runner: CliRunner, project: Path, *args: str) -> Result:
    return runner.invoke(main, ["install", "--project-dir", str(project), *args])


def test_install_writes_the_starters_and_mounts_the_control_plane(
    runner: CliRunner, project: Path
) -> None:
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    pkg = project / "myapp"
    for name in STARTERS:
        assert f"created      myapp/{name}" in result.output
        ast.parse((pkg / name).read_text())  # valid Python
    auth = (pkg / "ops_auth.py").read_text()
    assert "STARTER: THE HOST OWNS THIS FILE." in auth and "DENIES EVERYTHING" in auth
    assert "class PowertoolsAuth" in auth
    for method in ("def current_actor", "def authorize", "def audit_principal"):
        assert method in auth
    display = (pkg / "ops_display.py").read_text()
    assert "class PowertoolsDisplay" in display and '"[redacted]"' in display
    config = (pkg / "powertools_config.py").read_text()
    assert "powertools = Powertools(build_config())" in config
    assert 'os.environ.get("DATABASE_URL"' in config

    app = (pkg / "main.py").read_text()
    assert "from myapp.powertools_config import powertools, powertools_lifespan" in app
    assert 'app = FastAPI(title="My app", lifespan=powertools_lifespan)' in app
    assert 'app.mount("/ops/jobs", powertools.asgi_app())' in app
    assert "patched      myapp/main.py" in result.output
    assert "uvicorn myapp.main:app" in result.output

    manifest = json.loads((project / MANIFEST_NAME).read_text())
    assert manifest["config"] == "myapp.powertools_config:build_config"
    assert manifest["import_root"] == "."
    assert manifest["mount"] == {"file": "myapp/main.py", "state": "applied"}
    assert manifest["files"] == {
        f"myapp/{name}": content_hash((pkg / name).read_text()) for name in STARTERS
    }


def test_rerunning_changes_nothing(runner: CliRunner, project: Path) -> None:
    assert install(runner, project).exit_code == 0
    before = snapshot(project)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before  # same bytes, same mtimes: nothing rewritten
    assert "Nothing changed" in result.output
    assert "unchanged    myapp/main.py" in result.output and "already mounts /ops/jobs" in (
        result.output
    )
    assert "created" not in result.output and "patched" not in result.output


def test_an_edited_starter_is_never_overwritten(runner: CliRunner, project: Path) -> None:
    assert install(runner, project).exit_code == 0
    auth = project / "myapp" / "ops_auth.py"
    edited = auth.read_text().replace("return False", "return actor == 'ops-demo'")
    auth.write_text(edited)
    before = snapshot(project)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert auth.read_text() == edited
    assert snapshot(project) == before
    assert "kept         myapp/ops_auth.py" in result.output
    assert "edited since install: not overwritten" in result.output


def test_a_deleted_starter_is_not_recreated(runner: CliRunner, project: Path) -> None:
    assert install(runner, project).exit_code == 0
    (project / "myapp" / "ops_display.py").unlink()
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert not (project / "myapp" / "ops_display.py").exists()
    assert "deleted since install: not recreated" in result.output


def test_a_file_install_did_not_write_is_left_alone(runner: CliRunner, project: Path) -> None:
    own = "class PowertoolsDisplay:\n    def display(self, kind, value, context):\n        return '*'\n"
    (project / "myapp" / "ops_display.py").write_text(own)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert (project / "myapp" / "ops_display.py").read_text() == own
    assert "not written by install: not overwritten" in result.output
    manifest = json.loads((project / MANIFEST_NAME).read_text())
    assert "myapp/ops_display.py" not in manifest["files"]


def test_dry_run_writes_nothing_and_shows_the_patch(runner: CliRunner, project: Path) -> None:
    before = snapshot(project)
    result = install(runner, project, "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(project) == before
    assert "would create myapp/ops_auth.py" in result.output
    assert "would patch  myapp/main.py" in result.output
    assert f"would write  {MANIFEST_NAME}" in result.output
    assert '+app.mount("/ops/jobs", powertools.asgi_app())' in result.output
    assert "Dry run: nothing was written." in result.output


def test_an_app_it_cannot_recognise_gets_the_snippet(runner: CliRunner, tmp_path: Path) -> None:
    factory = (
        "from fastapi import FastAPI\n\n\ndef create_app() -> FastAPI:\n    return FastAPI()\n"
    )
    project = make_project(tmp_path / "factory", main=factory)
    result = install(runner, project, "--app", "myapp/main.py")
    assert result.exit_code == 0, result.output
    assert (project / "myapp" / "main.py").read_text() == factory
    assert "not patched: no top-level `app = FastAPI(...)`" in result.output
    assert "Add the mount to your app module by hand:" in result.output
    assert "from myapp.powertools_config import powertools, powertools_lifespan" in (result.output)
    assert 'app.mount("/ops/jobs", powertools.asgi_app())' in result.output
    assert "mount" not in json.loads((project / MANIFEST_NAME).read_text())
    # The starters are written all the same.
    assert (project / "myapp" / "ops_auth.py").exists()


def test_an_app_with_its_own_lifespan_is_mounted_but_its_lifespan_left_to_the_host(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = (
        "from contextlib import asynccontextmanager\n\nfrom fastapi import FastAPI\n\n\n"
        "@asynccontextmanager\nasync def lifespan(app):\n    yield\n\n\n"
        "app = FastAPI(lifespan=lifespan)\n"
    )
    project = make_project(tmp_path / "own", main=source)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    patched = (project / "myapp" / "main.py").read_text()
    assert "app = FastAPI(lifespan=lifespan)\n" in patched
    assert "from myapp.powertools_config import powertools\n" in patched
    assert 'app.mount("/ops/jobs", powertools.asgi_app())' in patched
    assert "async with powertools:" in result.output


def test_a_removed_mount_is_not_put_back(runner: CliRunner, project: Path) -> None:
    assert install(runner, project).exit_code == 0
    main_py = project / "myapp" / "main.py"
    without = "".join(
        line for line in main_py.read_text().splitlines(keepends=True) if ".mount(" not in line
    )
    main_py.write_text(without)
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert main_py.read_text() == without
    assert "the mount was removed" in result.output
    assert "Add the mount to your app module by hand:" in result.output


def test_src_layout(runner: CliRunner, tmp_path: Path) -> None:
    project = tmp_path / "srcproj"
    make_project(project / "src")
    result = install(runner, project)
    assert result.exit_code == 0, result.output
    assert (project / "src" / "myapp" / "ops_auth.py").exists()
    manifest = json.loads((project / MANIFEST_NAME).read_text())
    assert manifest["import_root"] == "src" and manifest["package"] == "myapp"
    assert "patched      src/myapp/main.py" in result.output


def test_several_packages_need_package(runner: CliRunner, project: Path) -> None:
    (project / "billing").mkdir()
    (project / "billing" / "__init__.py").write_text("")
    (project / "tests").mkdir()
    (project / "tests" / "__init__.py").write_text("")  # never a candidate
    result = install(runner, project)
    assert result.exit_code == 1
    assert "found several packages (billing, myapp); pass --package PATH" in result.output
    assert not (project / "myapp" / "ops_auth.py").exists()
    result = install(runner, project, "--package", "myapp")
    assert result.exit_code == 0, result.output
    assert (project / "myapp" / "ops_auth.py").exists()
    # --app inside one package settles it too.
    result = install(runner, project, "--app", "myapp/main.py")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--package", "nope"], "--package nope: no such folder"),
        (["--app", "myapp/nope.py"], "--app myapp/nope.py: no such file"),
    ],
)
def test_bad_arguments_exit_1_with_the_reason(
    runner: CliRunner, project: Path, args: list[str], message: str
) -> None:
    result = install(runner, project, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert not (project / "myapp" / "ops_auth.py").exists()  # refused before writing


def test_no_package_at_all(runner: CliRunner, tmp_path: Path) -> None:
    result = install(runner, tmp_path)
    assert result.exit_code == 1
    assert "found no Python package" in result.output and "--package" in result.output


def test_unreadable_manifest_stops_install(runner: CliRunner, project: Path) -> None:
    (project / MANIFEST_NAME).write_text("{not json")
    result = install(runner, project)
    assert result.exit_code == 1
    assert f"{MANIFEST_NAME} is not a manifest" in result.output
    assert not (project / "myapp" / "ops_auth.py").exists()
