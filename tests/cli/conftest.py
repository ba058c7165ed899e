"""Fixtures for the CLI tests: a generated host project, with its imports forgotten after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.hostproject import host_imports, make_project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = make_project(tmp_path / "host")
    with host_imports(root):
        yield root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
