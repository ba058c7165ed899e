"""The library's error types. Every message names what is wrong and how to fix it."""

from __future__ import annotations


class PowertoolsError(Exception):
    """Base class for every error this library raises on purpose."""


class ConfigError(PowertoolsError):
    """A required setting is missing or invalid. Raised at start-up, never silently defaulted."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(f"{setting}: {problem}. {fix}")


class MigrationError(PowertoolsError):
    """The schema cannot be brought to the requested version."""
