"""Importing every module of the package, for checks that look at what modules define."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import oban_powertools

# Host glue imports its framework at module level, and the install templates are the
# host's starter files (they build a Config at import); neither holds SQL of its own.
SKIPPED_PACKAGES = ("oban_powertools.contrib", "oban_powertools.install.templates")


def import_all() -> list[ModuleType]:
    modules = [oban_powertools]
    for info in pkgutil.walk_packages(oban_powertools.__path__, "oban_powertools."):
        if info.name.startswith(SKIPPED_PACKAGES):
            continue
        modules.append(importlib.import_module(info.name))
    return modules
