"""Finding the host project from the current directory: its imports, its manifest, its config.

Every command that runs the host's code finds the project the same way (``doctor``,
``action``, and ``oban start`` through :mod:`.oban_cli`):

1. the project folder (the current directory, or ``--project-dir``) goes on ``sys.path``
   first, after the import root install recorded (``src/`` in a src layout), so
   ``myapp.powertools_config`` imports without ``PYTHONPATH=.``;
2. the install manifest (``.oban-powertools-install.json``) is read from that folder;
3. the config is, in this order: ``--config module:attr``, ``$OBAN_POWERTOOLS_CONFIG``,
   ``$OBAN_POWERTOOLS_AUTH`` with ``$OBAN_POWERTOOLS_DISPLAY`` (and ``$DATABASE_URL``), the
   config the manifest names.

A problem is a :class:`~.errors.ConfigError` naming the setting the user gave (``--config``,
the variable, or the manifest), not one they never set.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ENV_PREFIX, Config, from_env, load_object
from .errors import ConfigError
from .install.manifest import MANIFEST_NAME, Manifest
from .install.manifest import load as load_manifest

__all__ = ["ConfigSource", "HostProject", "find_project"]

CONFIG_OPTION = "--config"


@dataclass(frozen=True, slots=True)
class ConfigSource:
    path: str | None  # module:attr, or None for the AUTH/DISPLAY variables
    setting: str  # where it came from, as the user knows it


@dataclass(frozen=True, slots=True)
class HostProject:
    root: Path  # absolute
    manifest: Manifest | None

    @property
    def import_paths(self) -> list[Path]:
        """The folders the host's modules are imported from, the recorded root first."""
        paths = [self.root]
        if self.manifest is not None:
            recorded = (self.root / self.manifest.import_root).resolve()
            if recorded != self.root:
                paths.insert(0, recorded)
        return paths

    def put_on_sys_path(self) -> None:
        """For a process that runs host code from here on (``oban start``)."""
        for folder in reversed(self.import_paths):
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))

    @contextmanager
    def importable(self) -> Iterator[None]:
        """The host's modules importable while the block runs (the folders are taken off
        ``sys.path`` again afterwards; modules already imported stay imported)."""
        added = [str(f) for f in self.import_paths if str(f) not in sys.path]
        sys.path[:0] = added
        try:
            yield
        finally:
            for folder in added:
                if folder in sys.path:
                    sys.path.remove(folder)

    def config_source(
        self, config_path: str | None = None, env: Mapping[str, str] | None = None
    ) -> ConfigSource:
        env = os.environ if env is None else env
        if config_path:
            return ConfigSource(config_path, CONFIG_OPTION)
        if env.get(ENV_PREFIX + "CONFIG"):
            return ConfigSource(env[ENV_PREFIX + "CONFIG"], ENV_PREFIX + "CONFIG")
        if env.get(ENV_PREFIX + "AUTH") or env.get(ENV_PREFIX + "DISPLAY"):
            return ConfigSource(None, f"{ENV_PREFIX}AUTH and {ENV_PREFIX}DISPLAY")
        if self.manifest is not None:
            return ConfigSource(self.manifest.config, MANIFEST_NAME)
        raise ConfigError(
            CONFIG_OPTION,
            f"no configuration found (no --config, no {ENV_PREFIX}CONFIG, "
            f"no {MANIFEST_NAME} in {self.root})",
            "Run `oban-powertools install` in the project (it writes powertools_config.py "
            "and records it for the other commands), or run the command from the project's "
            "folder (or pass --project-dir), or pass --config package.module:build_config, "
            f"or set {ENV_PREFIX}CONFIG=package.module:build_config.",
        )

    def load_config(
        self,
        config_path: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        database_url: str | None = None,
    ) -> tuple[Config, ConfigSource]:
        """The host's Config and where it was found. ``database_url`` overrides
        ``$DATABASE_URL`` for the AUTH/DISPLAY variables (a named Config has its own).
        Raises ConfigError; an exception the host's module raises while importing is
        reported as one too."""
        env = os.environ if env is None else env
        source = self.config_source(config_path, env)
        with self.importable():
            if source.path is None:
                for name in ("AUTH", "DISPLAY"):
                    if path := env.get(ENV_PREFIX + name):
                        self._import(ConfigSource(path, ENV_PREFIX + name))
                overrides: dict[str, Any] = {}
                if database_url:
                    overrides["database_url"] = database_url
                return from_env({**env, ENV_PREFIX + "CONFIG": ""}, **overrides), source
            self._import(source)
            loaded = load_object(source.path, source.setting)
            if callable(loaded) and not isinstance(loaded, Config):
                loaded = self._call(loaded, source)
        if not isinstance(loaded, Config):
            raise ConfigError(
                source.setting,
                f"{source.path} is a {type(loaded).__name__}, not an oban_powertools Config",
                "Point it at a Config instance or a function returning one.",
            )
        return loaded, source

    def _import(self, source: ConfigSource) -> None:
        module = (source.path or "").partition(":")[0]
        if not module:
            return  # load_object says what is wrong with the path
        try:
            importlib.import_module(module)
        except ConfigError:
            raise  # the host's Config refused a setting while the module was imported
        except ImportError as exc:
            folders = " and ".join(str(f) for f in self.import_paths)
            raise ConfigError(
                source.setting,
                f"cannot import module {module!r} ({exc})",
                f"Check the module path; modules are imported from {folders} (run the "
                "command from the project's folder, or pass --project-dir).",
            ) from exc
        except Exception as exc:  # the host's module may raise anything while importing
            raise ConfigError(
                source.setting,
                f"loading {source.path} raised {type(exc).__name__}: {exc}",
                f"Fix the error in that module (run `python -c 'import {module}'` in "
                f"{self.root} to see the traceback).",
            ) from exc

    @staticmethod
    def _call(factory: Any, source: ConfigSource) -> Any:
        try:
            return factory()
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                source.setting,
                f"calling {source.path} raised {type(exc).__name__}: {exc}",
                "Fix the error in that function.",
            ) from exc


def find_project(project_dir: Path | None = None) -> HostProject:
    """The host project at ``project_dir`` (default: the current directory). Raises
    InstallError when its manifest cannot be read."""
    root = (project_dir or Path(os.getcwd())).resolve()
    return HostProject(root, load_manifest(root))
