"""``oban-powertools doctor``: one line per check, a fix for every failure, exit 1 on any."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from oban_powertools.cli import main
from oban_powertools.db import migrate
from oban_powertools.doctor import CHECKS
from oban_powertools.doctor.http import check_bridge, check_mount, http_get
from tests.cli.hostproject import cli_env

UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/none"


def installed(runner: CliRunner, project: Path) -> Path:
    result = runner.invoke(main, ["install", "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    return project


def doctor(runner: CliRunner, project: Path, *args: str, **env: str | None) -> Result:
    return runner.invoke(main, ["doctor", "--project-dir", str(project), *args], env=cli_env(**env))


def checks(result: Result) -> dict[str, dict[str, Any]]:
    report = json.loads(result.output)
    return {check["name"]: check for check in report["checks"]}


def test_json_shape(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    result = doctor(runner, project, "--json", DATABASE_URL=db_url)
    report = json.loads(result.output)
    assert set(report) == {"ok", "counts", "checks"}
    assert [c["name"] for c in report["checks"]] == list(CHECKS)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "fail", "skip")
        assert isinstance(check["detail"], str) and check["detail"]
        assert (check["fix"] is not None) == (check["status"] == "fail")
    assert sum(report["counts"].values()) == len(CHECKS)
    # No oban node runs against this database: the leader check fails, and says how to fix it.
    assert report["ok"] is False and result.exit_code == 1
    assert checks(result)["leader"]["status"] == "fail"
    assert "Start your worker process" in checks(result)["leader"]["fix"]


def test_unreachable_database(runner: CliRunner, project: Path) -> None:
    installed(runner, project)
    result = doctor(runner, project, "--json", DATABASE_URL=UNREACHABLE_DB)
    assert result.exit_code == 1
    found = checks(result)
    assert found["database"]["status"] == "fail"
    assert "cannot connect to postgresql://nobody@127.0.0.1:1/none" in found["database"]["detail"]
    assert "Start PostgreSQL" in found["database"]["fix"]
    for name in ("oban_schema", "migrations", "leader"):
        assert found[name] == {
            "name": name,
            "status": "skip",
            "detail": "not checked: the database is not reachable",
            "fix": None,
        }
    assert found["config"]["status"] == "ok"  # the seams are checked all the same

    text = doctor(runner, project, DATABASE_URL=UNREACHABLE_DB)
    assert text.exit_code == 1
    assert "✗ database" in text.output and "fix: Start PostgreSQL" in text.output


def test_password_is_not_printed(runner: CliRunner, project: Path) -> None:
    installed(runner, project)
    result = doctor(runner, project, DATABASE_URL="postgresql://u:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in result.output and "u:***@127.0.0.1" in result.output


def test_no_database_url(runner: CliRunner, project: Path) -> None:
    result = doctor(runner, project, "--json", DATABASE_URL="")
    assert result.exit_code == 1
    found = checks(result)
    assert found["database"]["detail"] == "no database URL"
    assert "DATABASE_URL" in found["database"]["fix"]


def test_missing_oban_schema_and_migrations(
    runner: CliRunner, project: Path, fresh_db_url: str
) -> None:
    installed(runner, project)
    result = doctor(runner, project, "--json", DATABASE_URL=fresh_db_url)
    assert result.exit_code == 1
    found = checks(result)
    assert found["database"]["status"] == "ok"
    assert found["oban_schema"]["status"] == "fail"
    assert "lacks oban_jobs, oban_leaders, oban_producers" in found["oban_schema"]["detail"]
    assert "oban-powertools migrate" in found["oban_schema"]["fix"]
    assert found["migrations"]["status"] == "fail"
    assert "pending: 0001 foundation" in found["migrations"]["detail"]
    assert "oban-powertools migrate" in found["migrations"]["fix"]
    assert found["leader"]["detail"] == "not checked: oban's schema is missing"


def test_pending_migration_only(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    latest = asyncio.run(migrate.rollback(db_url))
    assert latest is not None
    found = checks(doctor(runner, project, "--json", DATABASE_URL=db_url))
    assert found["oban_schema"]["status"] == "ok"
    assert found["migrations"]["status"] == "fail"
    assert f"{latest.version:04d} {latest.name}" in found["migrations"]["detail"]


def test_prefix_is_named_in_the_fix(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    found = checks(
        doctor(runner, project, "--json", DATABASE_URL=db_url, OBAN_POWERTOOLS_PREFIX="ops")
    )
    assert "oban-powertools migrate --prefix ops" in found["oban_schema"]["fix"]


def test_no_configuration_at_all(runner: CliRunner, project: Path, db_url: str) -> None:
    result = doctor(runner, project, "--json", DATABASE_URL=db_url)
    assert result.exit_code == 1
    found = checks(result)
    assert found["config"]["status"] == "fail"
    assert "no configuration found" in found["config"]["detail"]
    assert "oban-powertools install" in found["config"]["fix"]
    assert "--config" in found["config"]["fix"]
    for name in ("auth", "display", "bridge"):
        assert found[name]["detail"] == "not checked: the configuration did not load"
    assert found["database"]["status"] == "ok"  # from $DATABASE_URL


HALF_AUTH = """
class Auth:
    def current_actor(self, request):
        return None

    def audit_principal(self, actor):
        raise NotImplementedError


class Display:
    def display(self, kind, value, context):
        return None
"""


def test_incomplete_auth_seam(runner: CliRunner, project: Path, db_url: str) -> None:
    (project / "myapp" / "half.py").write_text(HALF_AUTH)
    result = doctor(
        runner,
        project,
        "--json",
        DATABASE_URL=db_url,
        OBAN_POWERTOOLS_AUTH="myapp.half:Auth",
        OBAN_POWERTOOLS_DISPLAY="myapp.half:Display",
    )
    assert result.exit_code == 1
    config = checks(result)["config"]
    assert config["detail"] == "auth: Auth lacks authorize"
    assert "Implement current_actor, authorize, audit_principal" in config["fix"]


def test_missing_display_policy(runner: CliRunner, project: Path, db_url: str) -> None:
    full = HALF_AUTH + "\n\nclass Full(Auth):\n    def authorize(self, actor, action, resource):\n"
    (project / "myapp" / "half.py").write_text(full + "        return False\n")
    result = doctor(
        runner, project, "--json", DATABASE_URL=db_url, OBAN_POWERTOOLS_AUTH="myapp.half:Full"
    )
    assert result.exit_code == 1
    config = checks(result)["config"]
    assert config["detail"] == "display: missing"
    assert "OBAN_POWERTOOLS_DISPLAY=module:attribute" in config["fix"]
    assert "Nothing is allowed without it" in config["fix"]


def test_seam_that_cannot_be_imported(runner: CliRunner, project: Path, db_url: str) -> None:
    result = doctor(runner, project, "--json", "--config", "myapp.nope:build", DATABASE_URL=db_url)
    config = checks(result)["config"]
    assert config["status"] == "fail"
    # The setting the user gave is the one named, and the fix needs no PYTHONPATH.
    assert config["detail"].startswith("--config: cannot import module 'myapp.nope'")
    assert f"modules are imported from {project}" in config["fix"]
    assert "--project-dir" in config["fix"] and "PYTHONPATH" not in config["fix"]


def test_seams_with_the_wrong_shape(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    auth = project / "myapp" / "ops_auth.py"
    auth.write_text(
        auth.read_text().replace(
            "def authorize(self, actor: Any, action: str, resource: Resource)",
            "def authorize(self, actor: Any)",
        )
    )
    display = project / "myapp" / "ops_display.py"
    display.write_text(display.read_text().replace("    def display(", "    async def display("))
    result = doctor(runner, project, "--json", DATABASE_URL=db_url)
    assert result.exit_code == 1
    found = checks(result)
    assert found["config"]["status"] == "ok"
    assert found["auth"]["status"] == "fail"
    assert (
        "authorize cannot be called as authorize(actor, action, resource)"
        in (found["auth"]["detail"])
    )
    assert "authorize(self, actor, action, resource)" in found["auth"]["fix"]
    assert found["display"]["status"] == "fail"
    assert "display is async def" in found["display"]["detail"]
    assert "plain (not async)" in found["display"]["fix"]


def test_config_module_that_raises(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    config = project / "myapp" / "powertools_config.py"
    config.write_text(config.read_text() + "\nraise RuntimeError('boom')\n")
    found = checks(doctor(runner, project, "--json", DATABASE_URL=db_url))
    assert found["config"]["status"] == "fail"
    assert "raised RuntimeError: boom" in found["config"]["detail"]


def test_missing_database_url_in_the_config(runner: CliRunner, project: Path) -> None:
    installed(runner, project)
    found = checks(doctor(runner, project, "--json", DATABASE_URL=""))
    assert found["config"]["detail"] == "database_url: missing"
    assert "DATABASE_URL" in found["config"]["fix"]


def test_the_starters_pass_as_generated(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    result = doctor(runner, project, "--json", "--skip", "leader", DATABASE_URL=db_url)
    assert result.exit_code == 0, result.output
    found = checks(result)
    assert found["config"]["detail"] == (
        "myapp.powertools_config:build_config (from .oban-powertools-install.json)"
    )
    assert found["auth"]["detail"] == (
        "myapp.ops_auth.PowertoolsAuth: current_actor, authorize, audit_principal"
    )
    assert "nothing redacted" in found["display"]["detail"]
    assert found["leader"]["detail"] == "skipped (--skip)"
    assert found["mount"]["status"] == "skip" and "--url" in found["mount"]["detail"]
    assert found["bridge"]["detail"].startswith("not configured (optional)")


def test_a_redacting_policy_is_reported(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    display = project / "myapp" / "ops_display.py"
    display.write_text(
        display.read_text().replace(
            "        return None\n",
            "        if context.field == 'password':\n            return '[redacted]'\n"
            "        return None\n",
        )
    )
    found = checks(doctor(runner, project, "--json", "--skip", "leader", DATABASE_URL=db_url))
    assert "shown as '[redacted]'" in found["display"]["detail"]


def test_ascii_marks(runner: CliRunner, project: Path) -> None:
    installed(runner, project)
    result = doctor(runner, project, "--ascii", DATABASE_URL=UNREACHABLE_DB)
    lines = result.output.splitlines()
    assert lines[0].startswith("FAIL database")
    assert any(line.startswith("ok   config") for line in lines)
    assert any(line.startswith("skip leader") for line in lines)
    assert "✓" not in result.output and "✗" not in result.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bridge_configured_but_unreachable(runner: CliRunner, project: Path, db_url: str) -> None:
    installed(runner, project)
    bridge = f"http://127.0.0.1:{free_port()}/"
    result = doctor(
        runner,
        project,
        "--json",
        "--skip",
        "leader",
        DATABASE_URL=db_url,
        OBAN_POWERTOOLS_BRIDGE_URL=bridge,
    )
    assert result.exit_code == 1
    found = checks(result)["bridge"]
    assert found["status"] == "fail" and f"bridge_url {bridge} is unreachable" in found["detail"]
    assert "OBAN_POWERTOOLS_BRIDGE_URL" in found["fix"]


def fake_get(responses: dict[str, tuple[int, str | None]]) -> Any:
    def get(url: str, timeout: float) -> tuple[int, str | None]:
        if url not in responses:
            raise ConnectionRefusedError(111, "Connection refused")
        return responses[url]

    return get


BASE = "http://127.0.0.1:8000/ops/jobs"


@pytest.mark.parametrize(
    ("responses", "status", "words"),
    [
        ({BASE: (200, None)}, "ok", "answers 200"),
        ({BASE: (401, None)}, "ok", "answers 401: mounted"),
        ({BASE: (403, None)}, "ok", "answers 403"),
        ({BASE: (303, "/login?next=/ops/jobs")}, "ok", "redirects to /login?next=/ops/jobs"),
        ({BASE: (307, BASE + "/"), BASE + "/": (401, None)}, "ok", f"{BASE}/ answers 401"),
        ({BASE: (404, None)}, "fail", "answers 404: nothing is mounted there"),
        ({BASE: (500, None)}, "fail", "answers 500"),
        ({BASE: (405, None)}, "fail", "expected 200, 401, 403 or a sign-in redirect"),
        ({}, "fail", "cannot reach"),
    ],
)
def test_mount_verdicts(
    responses: dict[str, tuple[int, str | None]], status: str, words: str
) -> None:
    check = check_mount(BASE, 1.0, fake_get(responses))
    assert check.status == status and words in check.detail
    assert (check.fix is not None) == (status == "fail")


def test_mount_fixes_name_the_remedy() -> None:
    assert 'app.mount("/ops/jobs", powertools.asgi_app())' in (
        check_mount(BASE, 1.0, fake_get({BASE: (404, None)})).fix or ""
    )
    assert "async with powertools:" in (
        check_mount(BASE, 1.0, fake_get({BASE: (500, None)})).fix or ""
    )
    assert "uvicorn" in (check_mount(BASE, 1.0, fake_get({})).fix or "")
    assert check_mount("ftp://x/", 1.0, fake_get({})).status == "fail"


def test_bridge_verdicts() -> None:
    url = "http://127.0.0.1:4000/"
    assert check_bridge(url, 1.0, fake_get({url: (200, None)})).status == "ok"
    assert check_bridge(url, 1.0, fake_get({url: (401, None)})).status == "ok"
    assert check_bridge(url, 1.0, fake_get({url: (502, None)})).status == "fail"


def test_http_get_against_a_closed_port() -> None:
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{free_port()}/", 1.0)


@pytest.mark.parametrize(
    ("expired_seconds_ago", "status"),
    [
        (-20, "ok"),  # a lease that is still valid
        (10, "ok"),  # oban-py 0.7 writes short leases renewed every 15 s: lapsed but led
        (120, "fail"),  # nobody has renewed it for two minutes: no leader (it stopped)
    ],
)
def test_leader_is_judged_by_recent_renewal(
    runner: CliRunner, project: Path, db_url: str, expired_seconds_ago: int, status: str
) -> None:
    installed(runner, project)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO oban_leaders (name, node, elected_at, expires_at) VALUES "
            "('Oban', 'web-1.42', timezone('UTC', now()) - interval '1 hour', "
            "timezone('UTC', now()) - make_interval(secs => %s))",
            (expired_seconds_ago,),
        )
        conn.execute(  # the leader runs the Powertools runtime
            "INSERT INTO powertools_runtime_nodes (name, node, version) "
            "VALUES ('Oban', 'web-1.42', '0.1.0')"
        )
    leader = checks(doctor(runner, project, "--json", DATABASE_URL=db_url))["leader"]
    assert leader["status"] == status
    if status == "ok":
        assert leader["detail"].startswith("web-1.42 leads 'Oban'")


def test_a_leader_without_the_runtime_fails_with_the_fix(
    runner: CliRunner, project: Path, db_url: str
) -> None:
    installed(runner, project)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # worker-1 ran the runtime; worker-2 leads the same instance without it.
        conn.execute(
            "INSERT INTO powertools_runtime_nodes (name, node, version) "
            "VALUES ('oban', 'worker-1', '0.1.0')"
        )
        conn.execute(
            "INSERT INTO oban_leaders (name, node, elected_at, expires_at) VALUES "
            "('oban', 'worker-2', timezone('UTC', now()), timezone('UTC', now()))"
        )
    leader = checks(doctor(runner, project, "--json", DATABASE_URL=db_url))["leader"]
    assert leader["status"] == "fail"
    assert leader["detail"].startswith("worker-2 leads 'oban' without the Powertools runtime")
    assert "**powertools.oban_options()" in leader["fix"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO powertools_runtime_nodes (name, node, version) "
            "VALUES ('oban', 'worker-2', '0.1.0')"
        )
    leader = checks(doctor(runner, project, "--json", DATABASE_URL=db_url))["leader"]
    assert leader["status"] == "ok" and leader["detail"].startswith("worker-2 leads 'oban'")
