"""``pip install oban-powertools`` and nothing else: every module imports, the CLI runs.

The environment has the wheel's required dependencies only (no extras, no dev tools), so
an import the wheel does not declare fails here as it would for a user.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.wheel.fixtures import FreshEnvs
from tests.wheel.freshenv import ROOT, FreshEnv

pytestmark = pytest.mark.wheel
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Imports every module of the installed package, except the host's starter files (copied
# into a project, not imported from here) and contrib modules whose framework is an extra.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import oban_powertools
from oban_powertools import ConfigError

extras = set(sys.argv[1].split(",")) - {""}
imported, refused = [], {}
for info in pkgutil.walk_packages(oban_powertools.__path__, "oban_powertools."):
    name = info.name
    if name.startswith("oban_powertools.install.templates."):
        continue
    parts = name.split(".")
    # contrib.<extra> and the modules inside a contrib.<extra> package (which the framework
    # itself loads, e.g. Django's apps and models) need the extra; a package's own
    # __init__ must import without it.
    if parts[:2] == ["oban_powertools", "contrib"] and len(parts) > 2 and parts[2] in extras:
        if len(parts) > 3 or not info.ispkg:
            continue
    try:
        importlib.import_module(name)
    except ConfigError as exc:
        refused[name] = str(exc)
        continue
    imported.append(name)
print(json.dumps({"imported": imported, "refused": refused, "file": oban_powertools.__file__}))
"""

BRIDGE = """
import sys
from oban_powertools import Config, ConfigError, Powertools, Principal

class Auth:
    def current_actor(self, request): return None
    def authorize(self, actor, action, resource): return False
    def audit_principal(self, actor): return Principal(id="x", type="user", label="x")

class Display:
    def display(self, kind, value, context): return None

def powertools(**extra):
    return Powertools(Config(database_url="postgresql://127.0.0.1:1/none", auth=Auth(),
                             display=Display(), **extra))

powertools().asgi_app()  # no bridge: builds without an HTTP client
try:
    powertools(bridge_url="http://127.0.0.1:4000").asgi_app()
except ConfigError as exc:
    print(exc.setting, "|", exc)
    sys.exit(0)
sys.exit("a bridge was configured without httpx, and nothing said so")
"""


@pytest.fixture(scope="module")
def bare(fresh_envs: FreshEnvs) -> FreshEnv:
    return fresh_envs()


def test_the_bare_environment_has_no_dev_dependencies(bare: FreshEnv) -> None:
    for module in ("pytest", "httpx", "uvicorn", "fastapi", "itsdangerous", "mypy"):
        assert not bare.has_module(module), f"{module} is in the fresh environment"
    assert bare.has_module("psycopg") and bare.has_module("python_multipart")


def test_every_module_imports_from_the_wheel(bare: FreshEnv, tmp_path: Path) -> None:
    extras = "bridge,binary,fastapi,litestar,django"
    result = bare.run(["python", "-c", IMPORT_ALL, extras], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["file"]).is_relative_to(bare.root), "imported from the source tree"
    assert "oban_powertools.web.app" in report["imported"]
    assert "oban_powertools.cli" in report["imported"]
    assert "oban_powertools.runtime" in report["imported"]
    # The bridge module and the pydantic args adapter refuse to load without their
    # extras, naming them.
    assert set(report["refused"]) == {
        "oban_powertools.web.routes.bridge",
        "oban_powertools.workers.pydantic_args",
        "oban_powertools.contrib.otel",
        "oban_powertools.web.metrics",
        "oban_powertools.web.routes.metrics",
    }
    for module, extra in (
        ("oban_powertools.contrib.otel", "otel"),
        ("oban_powertools.web.metrics", "prometheus"),
    ):
        assert f'pip install "oban-powertools[{extra}]"' in report["refused"][module]
    assert (
        'pip install "oban-powertools[bridge]"'
        in report["refused"]["oban_powertools.web.routes.bridge"]
    )
    assert (
        'pip install "oban-powertools[pydantic]"'
        in report["refused"]["oban_powertools.workers.pydantic_args"]
    )
    # Typed workers with dataclass args need no extra.
    assert "oban_powertools.workers.typed" in report["imported"]


def test_a_configured_bridge_without_the_extra_fails_at_start_up(
    bare: FreshEnv, tmp_path: Path
) -> None:
    result = bare.run(["python", "-c", BRIDGE], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    setting, message = result.stdout.strip().split(" | ", 1)
    assert setting == "bridge_url"
    assert 'pip install "oban-powertools[bridge]"' in message


def test_the_cli_runs_and_knows_its_version(bare: FreshEnv, tmp_path: Path) -> None:
    result = bare.run(["oban-powertools", "--version"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    version = bare.run(
        ["python", "-c", "import oban_powertools; print(oban_powertools.__version__)"],
        cwd=tmp_path,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == PYPROJECT["project"]["version"]
    assert result.stdout.strip().endswith(version.stdout.strip())
