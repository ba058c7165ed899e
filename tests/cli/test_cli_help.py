"""``--help`` says everything it starts to say, and ``migrate`` says what it created."""

from __future__ import annotations

import inspect

import click
import psycopg
import pytest
from click.testing import CliRunner

from oban_powertools.cli import main

COMMANDS = sorted(main.commands)


def first_sentence(command: click.Command) -> str:
    """The docstring's first paragraph, on one line (what a reader needs in the list)."""
    assert command.help, f"{command.name} has no help text"
    return " ".join(inspect.cleandoc(command.help).split("\n\n", 1)[0].split())


def flat(text: str) -> str:
    return " ".join(text.split())


def cut_off(output: str) -> bool:
    """Whether click shortened a text ("..." after a word; the usage line's ``[ARGS]...``
    is syntax)."""
    body = output.split("\n", 1)[1]
    return any(line.rstrip().endswith("...") for line in body.splitlines())


@pytest.mark.parametrize("columns", ["80", "200"])
def test_help_shows_every_first_sentence_whole(columns: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    listing = flat(result.output.split("Commands:", 1)[1])
    for name in COMMANDS:
        assert f"{name} {first_sentence(main.commands[name])}" in listing, result.output
    assert not cut_off(result.output), result.output
    for name in COMMANDS:
        own = runner.invoke(main, [name, "--help"], env={"COLUMNS": columns})
        assert own.exit_code == 0, own.output
        assert first_sentence(main.commands[name]) in flat(own.output)
        assert not cut_off(own.output), own.output


def test_migrate_says_it_installed_obans_schema(fresh_db_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["migrate", "--database-url", fresh_db_url])
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0] == (
        "installed oban's schema (oban_jobs, oban_leaders, oban_producers) in schema 'public'"
    )
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute("SELECT to_regclass('public.oban_jobs') IS NOT NULL").fetchone()
    assert row == (True,)
    assert lines[-1].endswith("migration(s) applied")

    again = runner.invoke(main, ["migrate", "--database-url", fresh_db_url])
    assert again.exit_code == 0, again.output
    assert "oban's schema" not in again.output
    assert again.output.strip() == "schema 'public' is current"


def test_migrate_names_the_chosen_schema(fresh_db_url: str) -> None:
    result = CliRunner().invoke(
        main, ["migrate", "--database-url", fresh_db_url, "--prefix", "ops"]
    )
    assert result.exit_code == 0, result.output
    assert "in schema 'ops'" in result.output.splitlines()[0]
