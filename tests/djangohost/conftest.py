"""The example Django host (examples/django_host), against the test PostgreSQL.

A session template holds Django's tables, the oban-powertools permissions and the seeded
operators, made by the documented commands (``manage.py migrate``, ``manage.py seed``) in
a subprocess; each process test gets a clone of it. Django can be set up once per
process, so the in-process ASGI tests share one clone for the session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.db import ROOT, TEMPLATE, admin_execute, with_database

EXAMPLE = ROOT / "examples" / "django_host"
DJANGO_TEMPLATE = "powertools_test_django_template"


def example_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBAN_POWERTOOLS_", "DJANGO_"))}
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="opsdemo.settings",
        PYTHONPATH=str(EXAMPLE),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=example_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def django_template(server_url: str, template_url: str) -> str:
    admin_execute(
        server_url,
        f"DROP DATABASE IF EXISTS {DJANGO_TEMPLATE} WITH (FORCE)",
        f"CREATE DATABASE {DJANGO_TEMPLATE} TEMPLATE {TEMPLATE}",
    )
    url = with_database(server_url, DJANGO_TEMPLATE)
    for command in (["migrate", "--no-input"], ["seed"]):
        done = manage(url, *command)
        assert done.returncode == 0, done.stdout + done.stderr
    return url


def _clone(server_url: str) -> tuple[str, str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_execute(server_url, f"CREATE DATABASE {name} TEMPLATE {DJANGO_TEMPLATE}")
    return name, with_database(server_url, name)


@pytest.fixture
def django_db(server_url: str, django_template: str) -> Iterator[str]:
    """A database with Django's tables, the permissions, the operators and nightly_sync."""
    name, url = _clone(server_url)
    try:
        yield url
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def django_site(server_url: str, django_template: str) -> Iterator[dict[str, Any]]:
    """The example's ASGI application in this process, and its database URL."""
    name, url = _clone(server_url)
    before = {k: os.environ.get(k) for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "opsdemo.settings"
    sys.path.insert(0, str(EXAMPLE))
    try:
        import importlib

        asgi: ModuleType = importlib.import_module("opsdemo.asgi")
        config: ModuleType = importlib.import_module("opsdemo.powertools_config")
    finally:
        # Set up once; the variables must not leak into other tests' subprocesses.
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield {"application": asgi.application, "powertools": config.powertools, "url": url}
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
