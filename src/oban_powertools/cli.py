"""The ``oban-powertools`` command: migrate now; install and doctor join it later."""

from __future__ import annotations

import asyncio

import click
import psycopg

from .config import database_only
from .db import migrate as migrations
from .errors import PowertoolsError

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


@click.group()
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
            ran = asyncio.run(migrations.apply(settings.database_url, settings.prefix))
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
