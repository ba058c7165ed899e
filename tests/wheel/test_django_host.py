"""From ``pip install "oban-powertools[django]"`` to a first audited pause in a new Django
project (``django-admin startproject``), everything from the fresh environment, the
project folder as the current directory and no ``PYTHONPATH``: install writes the Django
wiring (asgi.py, settings, a seam on Django's users and permissions), ``manage.py migrate``
creates the permissions, operators sign in through Django's own login, the worker is
``manage.py oban_worker``, and an operator pauses a cron entry through the pages.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.wheel.fixtures import FreshEnvs
from tests.wheel.freshenv import FreshEnv
from tests.wheel.hosting import (
    JOBS,
    MOUNT,
    Processes,
    answers,
    field,
    first_audited_pause,
    free_port,
    has_cron_entry,
    has_leader,
)

pytestmark = pytest.mark.wheel

PASSWORD = "demo-password-1"

# The host developer's own settings: Django on the same PostgreSQL as oban (the recipe's
# advice), and the module that declares the jobs, for the worker command to import.
SETTINGS_TAIL = """

import os as _os
from urllib.parse import urlsplit as _urlsplit

_db = _urlsplit(_os.environ["DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username or "",
        "HOST": _db.hostname or "",
        "PORT": str(_db.port or ""),
    }
}
OBAN_POWERTOOLS["IMPORTS"] = ["mysite.jobs"]
"""

# Operators as the host grants them: staff users, one with every oban_powertools
# permission, one with only the view_* ones.
USERS = f'''
from django.contrib.auth.models import Permission, User

every = Permission.objects.filter(content_type__app_label="oban_powertools")
assert every.filter(codename="pause_cron_entry").exists(), "migrate made no permissions"
ops = User.objects.create_user("ops-demo", password="{PASSWORD}", is_staff=True,
                               first_name="Ops", last_name="Demo")
ops.user_permissions.set(every)
viewer = User.objects.create_user("ops-viewer", password="{PASSWORD}", is_staff=True)
viewer.user_permissions.set(every.filter(codename__startswith="view_"))
'''


def django_sign_in(client: httpx.Client, username: str) -> None:
    """Django's admin login, as a browser does it: the form's CSRF token, then the POST."""
    login = f"/admin/login/?next={MOUNT}/"
    page = client.get(login)
    assert page.status_code == 200, page.text
    done = client.post(
        login,
        data={
            "csrfmiddlewaretoken": field(page.text, "csrfmiddlewaretoken"),
            "username": username,
            "password": PASSWORD,
            "next": f"{MOUNT}/",
        },
    )
    assert done.status_code == 302 and done.headers["location"] == f"{MOUNT}/", done.text


@pytest.fixture(scope="module")
def env(fresh_envs: FreshEnvs) -> FreshEnv:
    return fresh_envs(extras=("django",), packages=("uvicorn",))


def test_pip_install_to_a_first_audited_pause(
    env: FreshEnv, fresh_db_url: str, tmp_path: Path
) -> None:
    project = tmp_path / "host"
    project.mkdir()
    environ = env.environ(DATABASE_URL=fresh_db_url)
    env.check(["django-admin", "startproject", "mysite", "."], cwd=project, env=environ)
    (project / "mysite" / "jobs.py").write_text(JOBS)

    def cli(*args: str) -> str:
        return env.check(["oban-powertools", *args], cwd=project, env=environ)

    def manage(*args: str) -> str:
        return env.check(["python", "manage.py", *args], cwd=project, env=environ)

    installed = cli("install")
    assert "patched      mysite/asgi.py" in installed
    assert "patched      mysite/settings.py" in installed
    assert "python manage.py oban_worker" in installed and "FastAPI" not in installed
    with (project / "mysite" / "settings.py").open("a") as settings:
        settings.write(SETTINGS_TAIL)
    assert "migration(s) applied" in cli("migrate")
    manage("migrate", "--noinput")
    manage("shell", "-c", USERS)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = ["uvicorn", "mysite.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    with Processes(tmp_path / "logs") as processes:
        processes.start("web", env, web, cwd=project, environ=environ)
        worker = ["python", "manage.py", "oban_worker"]
        processes.start("worker", env, worker, cwd=project, environ=environ)
        processes.wait_until(
            answers(f"{base}/admin/login/"), within=30, what="the web process to answer"
        )
        # Anonymous visitors are sent to Django's login, which the settings name.
        anonymous = httpx.get(f"{base}{MOUNT}/")
        assert anonymous.status_code in (302, 303), anonymous.text
        assert "login" in anonymous.headers["location"]
        processes.wait_until(has_leader(fresh_db_url), within=30, what="the worker to lead")
        processes.wait_until(
            has_cron_entry(fresh_db_url, "nightly_sync"),
            within=30,
            what="the worker's runtime to store the declared cron entry",
        )

        report = json.loads(cli("doctor", "--url", f"{base}{MOUNT}/", "--json"))
        statuses = {c["name"]: c["status"] for c in report["checks"]}
        assert "fail" not in statuses.values(), report
        assert statuses["leader"] == "ok" and statuses["mount"] == "ok", report

        first_audited_pause(
            base,
            fresh_db_url,
            entry="nightly_sync",
            reason="upstream outage",
            sign_in=django_sign_in,
            label="Ops Demo",
        )
