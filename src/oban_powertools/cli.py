"""The ``oban-powertools`` command: install, migrate, doctor, action, explain.

Thin wrappers: the work lives in :mod:`.install`, :mod:`.db.migrate`, :mod:`.doctor` and
the action pipeline.
Exit status 0 means done (or all checks passed), 1 means a problem the output explains.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import click
import psycopg

from . import doctor as doctor_checks
from .actions.errors import ActionError
from .config import Config, database_only
from .db import migrate as migrations
from .display import Display
from .errors import PowertoolsError
from .install import InstallError, InstallReport
from .install import install as run_install
from .powertools import Powertools
from .project import find_project
from .read_models.explain import explain as explain_job
from .read_models.explain import render_text
from .seams import Resource, resolve

database_url_option = click.option(
    "--database-url",
    envvar="DATABASE_URL",
    help="PostgreSQL URL (default: $DATABASE_URL).",
)
prefix_option = click.option(
    "--prefix",
    envvar="OBAN_POWERTOOLS_PREFIX",
    default="public",
    show_default=True,
    help="Schema holding oban's tables and ours.",
)


class FullHelpCommand(click.Command):
    """A command listed in ``--help`` with its whole first sentence: click would cut it to
    the terminal's width and end it with "...", mid-thought."""

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.short_help or not self.help:
            return super().get_short_help_str(limit)
        return " ".join(inspect.cleandoc(self.help).split("\n\n", 1)[0].split())


class PowertoolsGroup(click.Group):
    command_class = FullHelpCommand


@click.group(cls=PowertoolsGroup, context_settings={"max_content_width": 100})
@click.version_option(package_name="oban-powertools")
def main() -> None:
    """Operator control plane and runtime power tools for oban-py."""


@main.command()
@database_url_option
@prefix_option
@click.option(
    "--status", "show_status", is_flag=True, help="List migrations and whether each is applied."
)
@click.option("--rollback", is_flag=True, help="Revert the latest applied migration.")
def migrate(database_url: str | None, prefix: str, show_status: bool, rollback: bool) -> None:
    """Install oban's schema when absent and apply the library's migrations."""
    try:
        settings = database_only(database_url or "", prefix)
        if show_status:
            for row in asyncio.run(migrations.status(settings.database_url, settings.prefix)):
                when = row.applied_at.isoformat(timespec="seconds") if row.applied_at else "pending"
                click.echo(f"{row.version:04d} {row.name:<30} {when}")
        elif rollback:
            reverted = asyncio.run(migrations.rollback(settings.database_url, settings.prefix))
            click.echo(
                f"rolled back {reverted.version:04d} {reverted.name}"
                if reverted
                else "nothing to roll back"
            )
        else:
            schema = settings.prefix

            def said_oban_installed() -> None:
                tables = ", ".join(doctor_checks.OBAN_TABLES)
                click.echo(f"installed oban's schema ({tables}) in schema {schema!r}")

            ran = asyncio.run(
                migrations.apply(
                    settings.database_url, schema, on_oban_installed=said_oban_installed
                )
            )
            for m in ran:
                click.echo(f"applied {m.version:04d} {m.name}")
            click.echo(
                f"schema {settings.prefix!r} is current"
                if not ran
                else f"{len(ran)} migration(s) applied"
            )
    except PowertoolsError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, psycopg.OperationalError) as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from exc


config_option = click.option(
    "--config",
    "config_path",
    help="module:attribute of the host's Config or of a function returning one "
    "(default: $OBAN_POWERTOOLS_CONFIG, else what install recorded).",
)
project_dir_option = click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The host project's root folder.",
)

DRY_RUN_VERBS = {"created": "would create", "patched": "would patch", "wrote": "would write"}


def _print_install(report: InstallReport) -> None:
    dry = ", dry run" if report.dry_run else ""
    click.echo(
        f"oban-powertools install in {report.project_dir} (package {report.package.module}{dry})"
    )
    width = max(len(step.path) for step in report.steps)
    for step in report.steps:
        verb = DRY_RUN_VERBS.get(step.verb, step.verb) if report.dry_run else step.verb
        click.echo(f"  {verb:<12} {step.path:<{width}}  {step.note}".rstrip())
    for diff in report.diffs:
        click.echo("")
        click.echo(diff.rstrip("\n"))
    if report.snippet:
        click.echo("")
        click.echo("Add the mount to your app module by hand:")
        click.echo("")
        for line in report.snippet.splitlines():
            click.echo(f"    {line}".rstrip())
    elif any(s.verb == "patched" for s in report.steps) and not report.lifespan_wired:
        click.echo("")
        click.echo(
            "Your app runs its own start-up code, so its lifespan is yours to edit: open the "
            "library's pool there with `async with powertools:` (see powertools_config.py)."
        )
    click.echo("")
    if report.dry_run:
        click.echo("Dry run: nothing was written.")
        return
    if not report.changed:
        click.echo("Nothing changed: every file is as install left it or as you edited it.")
        return
    auth_file = next(s.path for s in report.steps if s.path.endswith("ops_auth.py"))
    config_module = f"{report.package.module}.powertools_config"
    serve = f"uvicorn {report.app_target}" if report.app_target else "your app"
    click.echo("Next:")
    if report.django is not None:
        _print_django_next(auth_file, serve)
        return
    click.echo(
        f"  1. Make {auth_file} yours: it denies everything until current_actor, authorize "
        "and audit_principal (and actor_for_cli, for `oban-powertools action`) know your "
        "users."
    )
    click.echo("  2. With DATABASE_URL set: oban-powertools migrate")
    click.echo(
        "  3. Give every worker the Powertools runtime (the cron scheduler and the queue "
        "decisions): in each process that builds an Oban with queues,"
    )
    click.echo(f"         from {config_module} import powertools")
    click.echo(
        '         oban = Oban(pool=pool, queues={"default": 10}, **powertools.oban_options())'
    )
    click.echo(
        "     or, for workers started with `oban start`, name it in oban.toml under both "
        f'[scheduler] and [stager]: powertools = "{config_module}:powertools"'
    )
    click.echo(f"  4. Start {serve} and your worker; open /ops/jobs/ in the browser.")
    click.echo("  5. oban-powertools doctor --url http://127.0.0.1:8000/ops/jobs/")


def _print_django_next(auth_file: str, serve: str) -> None:
    """A Django project's next steps: its users and permissions, its worker command."""
    click.echo(
        f"  1. Look over {auth_file}: operators are active staff users holding the "
        "oban_powertools.<action> permissions (python manage.py migrate creates them); "
        "grant them in the admin or with groups."
    )
    click.echo("  2. With DATABASE_URL set: oban-powertools migrate, then python manage.py migrate")
    click.echo(
        "  3. Run the worker with the Powertools runtime (the cron scheduler and the queue "
        "decisions): python manage.py oban_worker"
    )
    click.echo(f"  4. Start {serve}; open /ops/jobs/ in the browser.")
    click.echo("  5. oban-powertools doctor --url http://127.0.0.1:8000/ops/jobs/")


@main.command()
@project_dir_option
@click.option(
    "--package",
    help="The host package folder to write the starter files into "
    "(detected when the project has exactly one).",
)
@click.option(
    "--app",
    "app",
    help="The module file defining `app = FastAPI(...)`, `Starlette(...)` or `Litestar(...)` "
    "to mount in "
    "(detected in the usual places when omitted).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be written; write nothing.")
def install(project_dir: Path, package: str | None, app: str | None, dry_run: bool) -> None:
    """Write starter auth and display seams and the config, and mount /ops/jobs.

    Never overwrites a file: re-running changes nothing, and files you edited stay yours.
    """
    try:
        report = run_install(project_dir, package=package, app=app, dry_run=dry_run)
    except InstallError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write into the project: {exc}") from exc
    _print_install(report)


@main.command()
@project_dir_option
@config_option
@click.option("--database-url", help="PostgreSQL URL (default: the config's, else $DATABASE_URL).")
@click.option("--prefix", help="Schema holding oban's tables and ours (default: the config's).")
@click.option(
    "--url",
    help="Where the app serves the mount, e.g. http://127.0.0.1:8000/ops/jobs/ (checked only "
    "when given).",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(doctor_checks.CHECKS),
    help="Do not run this check (repeatable), e.g. --skip leader before workers start.",
)
@click.option("--timeout", default=5.0, show_default=True, help="Seconds per network check.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--ascii", "ascii_only", is_flag=True, help="Plain ASCII marks instead of ✓ ✗.")
def doctor(
    project_dir: Path,
    config_path: str | None,
    database_url: str | None,
    prefix: str | None,
    url: str | None,
    skip: tuple[str, ...],
    timeout: float,
    as_json: bool,
    ascii_only: bool,
) -> None:
    """Check, one line each, what a working control plane needs; print the fix for each gap."""
    options = doctor_checks.DoctorOptions(
        project_dir=project_dir,
        config_path=config_path,
        database_url=database_url,
        prefix=prefix,
        url=url,
        skip=frozenset(skip),
        timeout=timeout,
    )
    checks = asyncio.run(doctor_checks.run(options))
    if as_json:
        click.echo(doctor_checks.render_json(checks))
    else:
        ascii_only = ascii_only or not doctor_checks.can_print_marks(
            getattr(sys.stdout, "encoding", None)
        )
        click.echo(doctor_checks.render_text(checks, ascii_only=ascii_only))
    if doctor_checks.failed(checks):
        sys.exit(1)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        params[key] = value
    return params


@asynccontextmanager
async def _as_operator(
    config: Config, actor_id: str, without_seam: str, *, changes: bool = False
) -> AsyncIterator[tuple[Powertools, Any]]:
    """An open Powertools and the actor the seam's ``actor_for_cli`` maps ``actor_id`` to,
    for a command an operator runs (``without_seam``: what a seam without that method
    means for it). The schema must be current; each refusal is a ClickException."""
    actor_for_cli = getattr(config.auth, "actor_for_cli", None)
    if not callable(actor_for_cli):
        raise click.ClickException(
            f"the auth seam does not implement actor_for_cli(actor_id), so {without_seam} "
            "(deny by default). Add it to your seam to map an operator id to an actor "
            "(the starter ops_auth.py that install writes shows it)."
        )
    powertools = Powertools(config)
    async with powertools:
        if problem := await powertools.schema.check():
            unchanged = "; nothing was changed" if changes else ""
            raise click.ClickException(f"{problem.describe()}. Run `{problem.command}`{unchanged}.")
        actor = await resolve(actor_for_cli(actor_id))
        if actor is None:
            raise click.ClickException(f"the auth seam knows no operator {actor_id!r}")
        yield powertools, actor


async def _run_action(
    config: Config,
    actor_id: str,
    action: str,
    targets: tuple[str, ...],
    params: dict[str, str],
    reason: str | None,
    assume_yes: bool,
) -> int:
    async with _as_operator(config, actor_id, "CLI actions are disabled", changes=True) as (
        powertools,
        actor,
    ):
        pipeline = powertools.pipeline
        preview = await pipeline.preview(actor, action, list(targets), params, surface="cli")
        click.echo(f"Preview: {preview.action} on {preview.resource}")
        click.echo(f"  effect:   {preview.effect}")
        click.echo(f"  operator: {preview.actor_label} ({preview.actor_id})")
        click.echo(f"  expires:  {preview.expires_at.isoformat(timespec='seconds')}")
        click.echo("  One immutable audit event will be written.")
        if not assume_yes:
            if not sys.stdin.isatty():
                raise click.ClickException(
                    "not confirmed: pass --yes to confirm without a terminal; nothing was changed"
                )
            if not click.confirm("Confirm?", default=False):
                click.echo("Not confirmed; nothing was changed.")
                return 1
        result = await pipeline.execute(actor, preview.token, reason, surface="cli")
        click.echo(
            f"Done: audit event {result.audit_event_id} ({preview.action} on {preview.resource})."
        )
        if result.skipped:
            click.echo(
                f"  left as they were (changed since the preview): {', '.join(result.skipped)}"
            )
        return 0


@main.command()
@click.argument("action_name", metavar="ACTION")
@click.argument("targets", nargs=-1)
@click.option(
    "--actor",
    "actor_id",
    required=True,
    help="The operator, as the auth seam's actor_for_cli knows them.",
)
@click.option("--reason", help="Why; required for destructive actions.")
@click.option("--param", "params", multiple=True, help="Action parameter KEY=VALUE (repeatable).")
@click.option("--yes", "assume_yes", is_flag=True, help="Confirm the preview without asking.")
@config_option
@project_dir_option
def action(
    action_name: str,
    targets: tuple[str, ...],
    actor_id: str,
    reason: str | None,
    params: tuple[str, ...],
    assume_yes: bool,
    config_path: str | None,
    project_dir: Path,
) -> None:
    """Preview an action, confirm it, and record it: the same pipeline as the pages.

    Example: oban-powertools action pause_cron_entry nightly_sync --actor ops-demo
    --reason "upstream outage" --yes

    An action that finds its own targets takes none: rescue_jobs --param queue=mailers
    --param kind=orphaned previews the queue's orphaned jobs as the database finds them.
    """
    try:
        project = find_project(project_dir)
        config, _ = project.load_config(config_path)
        with project.importable():  # the seams may import more of the host lazily
            code = asyncio.run(
                _run_action(
                    config,
                    actor_id,
                    action_name,
                    targets,
                    _parse_params(params),
                    reason,
                    assume_yes,
                )
            )
    except ActionError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from exc
    except PowertoolsError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, psycopg.OperationalError) as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from exc
    sys.exit(code)


async def _explain(config: Config, actor_id: str, job_id: int, as_json: bool) -> int:
    async with _as_operator(config, actor_id, "the CLI cannot tell who is asking") as (
        powertools,
        actor,
    ):
        # The job page's permission, asked of the host's seam as a page view asks it.
        allowed = await resolve(
            config.auth.authorize(actor, "view_jobs", Resource("job", str(job_id)))
        )
        if allowed is not True:
            raise click.ClickException(f"unauthorized: {actor_id!r} may not view job {job_id}")
        found = await explain_job(
            powertools.db,
            Display(config.display, "cli"),
            job_id,
            lifeline_grace=config.lifeline_grace_seconds,
        )
    if found is None:
        click.echo(f"no job {job_id} (pruned, or it never existed)", err=True)
        return 1
    click.echo(json.dumps(found.to_dict(), indent=2) if as_json else render_text(found))
    return 0


@main.command()
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1), metavar="JOB_ID")
@click.option(
    "--actor",
    "actor_id",
    required=True,
    help="Who asks, as the auth seam's actor_for_cli knows them (needs view_jobs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@config_option
@project_dir_option
def explain(
    job_id: int, actor_id: str, as_json: bool, config_path: str | None, project_dir: Path
) -> None:
    """Say why a job is not running: every reason, its evidence and the next step.

    Exit status 0 with the answer, 1 when there is no such job (or on a problem).
    Example: oban-powertools explain 42 --actor ops-demo
    """
    try:
        project = find_project(project_dir)
        config, _ = project.load_config(config_path)
        with project.importable():
            code = asyncio.run(_explain(config, actor_id, job_id, as_json))
    except PowertoolsError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, psycopg.OperationalError) as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from exc
    sys.exit(code)
