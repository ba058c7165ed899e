"""One check's result, the checks there are, and what the doctor is asked to look at."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Status = Literal["ok", "fail", "skip"]

CHECKS = (
    "database",
    "oban_schema",
    "migrations",
    "config",
    "auth",
    "display",
    "mount",
    "leader",
    "bridge",
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    project_dir: Path = Path(".")
    config_path: str | None = None  # module:attr of a Config or a factory returning one
    database_url: str | None = None  # overrides the config's
    prefix: str | None = None  # overrides the config's
    url: str | None = None  # the mounted control plane, e.g. http://127.0.0.1:8000/ops/jobs/
    skip: frozenset[str] = frozenset()
    timeout: float = 5.0
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
