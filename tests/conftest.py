"""Test harness: a real PostgreSQL, a fresh database per test.

Unless DATABASE_URL is given, the session starts the private cluster from
``tools/pgcluster.py`` and stops it at the end (also when tests fail). Each database test
gets its own database cloned from a migrated template, so tests never see each other's
rows and can run oban instances freely.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from tests.support.db import ROOT, TEMPLATE, admin_execute, run_async, with_database


def _load_pgcluster():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("pgcluster", ROOT / "tools" / "pgcluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    cluster = _load_pgcluster()
    url = cluster.start("test")
    try:
        yield url
    finally:
        cluster.stop("test")


@pytest.fixture(scope="session")
def template_url(server_url: str) -> str:
    from oban_powertools.db import migrate

    admin_execute(
        server_url,
        f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)",
        f"CREATE DATABASE {TEMPLATE}",
    )
    url = with_database(server_url, TEMPLATE)
    run_async(migrate.apply(url))
    return url


@pytest.fixture
def fresh_db_url(server_url: str) -> Iterator[str]:
    """An empty database (no schema at all)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_execute(server_url, f"CREATE DATABASE {name}")
    try:
        yield with_database(server_url, name)
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A database with oban's schema and every migration applied."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin_execute(server_url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield with_database(server_url, name)
    finally:
        admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[psycopg.AsyncConnection]:  # type: ignore[type-arg]
    from psycopg.rows import dict_row

    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as connection:
        yield connection


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: they are the slowest, and the fastest feedback comes first."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
