"""Session fixtures for every layer that needs the wheel: one build, shared environments.

``fresh_envs(extras=..., packages=...)`` returns the same environment for the same key
within a session, so a host test file adds its host, not another install. The conftest
of each layer that uses them imports them from here (``tests/wheel``, ``tests/docs``);
the memo below keeps that to one build and one venv per key, whichever layer asks first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.wheel.freshenv import Build, FreshEnv, build_wheel, fresh_env

FreshEnvs = Callable[..., FreshEnv]
EnvKey = tuple[tuple[str, ...], tuple[str, ...]]

# Keyed by the session's base temp folder: one entry per pytest session.
_builds: dict[Path, Build] = {}
_envs: dict[tuple[Path, EnvKey], FreshEnv] = {}


@pytest.fixture(scope="session")
def wheel_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    base = tmp_path_factory.getbasetemp()
    if base not in _builds:
        _builds[base] = build_wheel(tmp_path_factory.mktemp("wheel"))
    return _builds[base]


@pytest.fixture(scope="session")
def fresh_envs(tmp_path_factory: pytest.TempPathFactory, wheel_build: Build) -> FreshEnvs:
    base = tmp_path_factory.getbasetemp()

    def get(*, extras: Sequence[str] = (), packages: Sequence[str] = ()) -> FreshEnv:
        key: EnvKey = (tuple(sorted(extras)), tuple(sorted(packages)))
        if (base, key) not in _envs:
            root = tmp_path_factory.mktemp("venv") / "env"
            _envs[base, key] = fresh_env(wheel_build, root, extras=key[0], packages=key[1])
        return _envs[base, key]

    return get
