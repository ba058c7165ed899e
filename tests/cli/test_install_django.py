"""``oban-powertools install`` in a project made by ``django-admin startproject``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from oban_powertools.cli import main
from oban_powertools.install import MANIFEST_NAME
from oban_powertools.install.django_host import plan_settings
from tests.cli.hostproject import snapshot


def startproject(root: Path) -> Path:
    """What a Django developer starts from: startproject, plus one app of their own."""
    root.mkdir()
    for command in (
        [sys.executable, "-m", "django", "startproject", "mysite", str(root)],
        [sys.executable, "manage.py", "startapp", "polls"],
    ):
        subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=60)
    return root


@pytest.fixture
def django_project(tmp_path: Path) -> Path:
    return startproject(tmp_path / "site")


def install(runner: CliRunner, project: Path, *args: str) -> Result:
    return runner.invoke(main, ["install", "--project-dir", str(project), *args])


def in_project(project: Path, code: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_writes_the_django_wiring(runner: CliRunner, django_project: Path) -> None:
    result = install(runner, django_project)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "(package mysite)" in out  # the project package, not the polls app
    assert "FastAPI" not in out and "no app module found" not in out
    pkg = django_project / "mysite"
    auth = (pkg / "ops_auth.py").read_text()
    assert "STARTER: THE HOST OWNS THIS FILE." in auth and "DENIES BY DEFAULT" in auth
    assert "class PowertoolsAuth(DjangoAuth):" in auth
    config = (pkg / "powertools_config.py").read_text()
    assert "login_url=settings.LOGIN_URL" in config and "DJANGO_SETTINGS_MODULE" in config
    asgi = (pkg / "asgi.py").read_text()
    assert asgi.index("application = get_asgi_application()") < asgi.index(
        "from oban_powertools.contrib.django import mount"
    )
    assert "from mysite.powertools_config import powertools" in asgi
    assert asgi.rstrip().endswith("application = mount(application, powertools)")
    settings = (pkg / "settings.py").read_text()
    apps = ast.literal_eval(settings.split("INSTALLED_APPS = ", 1)[1].split("]", 1)[0] + "]")
    assert apps[-1] == "oban_powertools.contrib.django" and "django.contrib.admin" in apps
    assert '"POWERTOOLS": "mysite.powertools_config:powertools"' in settings
    assert "patched      mysite/asgi.py" in out and "patched      mysite/settings.py" in out
    assert "uvicorn mysite.asgi:application" in out
    # The next steps are Django's: its permissions and its worker command, not an Oban(...)
    # line to paste into a process the project does not have.
    assert "python manage.py oban_worker" in out and "oban_powertools.<action>" in out
    assert "**powertools.oban_options()" not in out and "oban.toml" not in out
    manifest = json.loads((django_project / MANIFEST_NAME).read_text())
    assert manifest["config"] == "mysite.powertools_config:build_config"
    assert manifest["mount"] == {
        "file": "mysite/asgi.py",
        "settings": "mysite/settings.py",
        "state": "applied",
    }


def test_the_installed_project_boots_and_knows_the_worker_command(
    runner: CliRunner, django_project: Path, db_url: str
) -> None:
    assert install(runner, django_project).exit_code == 0
    check = in_project(
        django_project,
        "import mysite.asgi, django.core.management as m;"
        "print(type(mysite.asgi.application).__name__);"
        "m.call_command('check');"
        "print('oban_worker' in m.get_commands())",
        db_url,
    )
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    assert lines[0] == "PrefixDispatcher" and "no issues" in lines[1] and lines[-1] == "True"
    # The doctor finds the config through the manifest and loads the Django seam.
    doctor = subprocess.run(
        [str(Path(sys.executable).parent / "oban-powertools"), "doctor", "--skip", "leader"],
        cwd=django_project,
        env={"PATH": str(Path(sys.executable).parent), "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "mysite.ops_auth.PowertoolsAuth" in doctor.stdout


def test_rerunning_changes_nothing(runner: CliRunner, django_project: Path) -> None:
    assert install(runner, django_project).exit_code == 0
    before = snapshot(django_project)
    result = install(runner, django_project)
    assert result.exit_code == 0, result.output
    assert snapshot(django_project) == before
    assert "Nothing changed" in result.output
    assert "unchanged    mysite/asgi.py" in result.output
    assert "unchanged    mysite/settings.py" in result.output


def test_a_removed_mount_is_not_put_back(runner: CliRunner, django_project: Path) -> None:
    asgi = django_project / "mysite" / "asgi.py"
    original = asgi.read_text()
    assert install(runner, django_project).exit_code == 0
    asgi.write_text(original)
    result = install(runner, django_project)
    assert result.exit_code == 0, result.output
    assert asgi.read_text() == original
    assert "the mount was removed" in result.output
    assert "mount(application, powertools)" in result.output  # the snippet, Django's


def test_an_asgi_module_it_cannot_patch_gets_the_django_snippet(
    runner: CliRunner, django_project: Path
) -> None:
    asgi = django_project / "mysite" / "asgi.py"
    custom = (
        "from django.core.asgi import get_asgi_application\n\n\n"
        "def make():\n    return get_asgi_application()\n"
    )
    asgi.write_text(custom)
    result = install(runner, django_project)
    assert result.exit_code == 0, result.output
    assert asgi.read_text() == custom
    assert "not patched: no top-level `application = get_asgi_application()`" in result.output
    assert "from oban_powertools.contrib.django import mount" in result.output
    assert "FastAPI" not in result.output


def test_dry_run_writes_nothing(runner: CliRunner, django_project: Path) -> None:
    before = snapshot(django_project)
    result = install(runner, django_project, "--dry-run")
    assert result.exit_code == 0, result.output
    assert snapshot(django_project) == before
    assert "+application = mount(application, powertools)" in result.output
    assert "+    'oban_powertools.contrib.django',\n" in result.output  # startproject's quotes


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            'INSTALLED_APPS = [\n    "a",\n    "b"\n]\n',
            'INSTALLED_APPS = [\n    "a",\n    "b",\n    "oban_powertools.contrib.django",\n]\n',
        ),
        (
            "INSTALLED_APPS = (\n  'a',\n)\n",
            "INSTALLED_APPS = (\n  'a',\n  'oban_powertools.contrib.django',\n)\n",
        ),
    ],
)
def test_the_settings_patch_keeps_the_files_style(before: str, after: str) -> None:
    plan = plan_settings(before, "mysite.powertools_config")
    assert plan.state == "patch" and plan.text is not None
    assert plan.text.startswith(after)
    assert plan_settings(plan.text, "mysite.powertools_config").state == "present"


@pytest.mark.parametrize(
    "settings",
    ["INSTALLED_APPS = BASE_APPS + ['polls']\n", "INSTALLED_APPS = ['a', 'b']\n", "x = (\n"],
)
def test_settings_it_cannot_patch_safely_are_left_alone(settings: str) -> None:
    assert plan_settings(settings, "mysite.powertools_config").state == "manual"
