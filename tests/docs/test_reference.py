"""The API reference (``mkdocs.yml``, ``docs/reference/``) covers the public surface.

``mkdocs build --strict`` in ``make test`` renders it from the docstrings; this checks that
nothing public is left out of it, and that every reference page is in the navigation.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import oban_powertools
import oban_powertools.contrib
from tests.cli.hostproject import ROOT

REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.MULTILINE)


def documented() -> set[str]:
    return {m for page in REFERENCE.glob("*.md") for m in DIRECTIVE.findall(page.read_text())}


def covered(path: str, names: set[str]) -> bool:
    """``path`` itself, or a module above it, has a ``:::`` directive."""
    parts = path.split(".")
    return any(".".join(parts[:i]) in names for i in range(2, len(parts) + 1))


def test_every_public_name_is_in_the_reference() -> None:
    names = documented()
    missing = []
    for name in oban_powertools.__all__:
        if name == "__version__":
            continue
        obj = getattr(oban_powertools, name)
        defined = f"{obj.__module__}.{obj.__qualname__}"
        if not (covered(f"oban_powertools.{name}", names) or covered(defined, names)):
            missing.append(name)
    assert not missing, f"public names without a ::: directive in docs/reference: {missing}"


def test_every_contrib_module_is_in_the_reference() -> None:
    names = documented()
    modules = [
        info.name
        for info in pkgutil.iter_modules(
            oban_powertools.contrib.__path__, "oban_powertools.contrib."
        )
    ]
    assert modules
    missing = [m for m in modules if m not in names]
    assert not missing, f"add `::: {missing[0]}` to docs/reference/contrib.md"


def test_every_directive_names_something_that_exists() -> None:
    for name in documented():
        module, _, attr = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attr), name


def test_every_reference_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in REFERENCE.glob("*.md"):
        assert f"reference/{page.name}" in nav, page.name
    for guide in (ROOT / "docs").glob("*.md"):
        assert f" {guide.name}" in nav, guide.name
