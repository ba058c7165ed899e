"""The README as PyPI shows it: clone commands first, then install; links that work off
GitHub; Python that matches the API (every coroutine awaited, every import real)."""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from pathlib import Path

import pytest

import oban_powertools
from oban_powertools import Powertools
from oban_powertools.actions.operator import Operator
from tests.cli.hostproject import ROOT
from tests.docs.test_docs_commands import DOC_FILES, blocks

PROJECT_URL = "https://github.com/oban-powertools/oban-powertools"
README = ROOT / "README.md"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>\s]+)>")
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# What the public objects offer as coroutines: calling one without await does nothing.
COROUTINES = frozenset(
    name
    for cls in (Powertools, Operator)
    for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction)
    if not name.startswith("_")
)


def links(text: str) -> list[str]:
    return [a or b for a, b in LINK.findall(text)]


def repo_path(url: str) -> Path | None:
    """The file or folder in this repository a project URL points to (None: not a file)."""
    rest = url.removeprefix(PROJECT_URL)
    match = re.match(r"^/(blob|tree)/main/(.+?)/?(#.*)?$", rest)
    return ROOT / match[2] if match else None


def unawaited(tree: ast.AST) -> list[str]:
    awaited = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Await)}
    return [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in COROUTINES
        and id(node) not in awaited
    ]


def test_the_readme_starts_with_the_clone_commands_then_install() -> None:
    text = README.read_text(encoding="utf-8")
    first = blocks(README)[0]
    assert "make demo" in first.text and "make test" in first.text
    assert text.index("## From a clone") < text.index(first.text) < text.index("## Install")
    install = text[text.index("## Install") :]
    assert "pip install oban-powertools" in install


def test_readme_links_are_absolute_and_point_into_the_project() -> None:
    text = README.read_text(encoding="utf-8")
    found = links(text)
    assert found
    for target in found:
        assert "://" in target, f"README: relative link {target} is broken on PyPI"
        if "github.com" in target:
            assert target.startswith(PROJECT_URL), f"README: {target} is not {PROJECT_URL}"
        path = repo_path(target)
        if path is not None:
            assert path.exists(), f"README: {target} points to nothing in the repository"


def test_project_urls_name_the_one_project() -> None:
    urls = PYPROJECT["project"]["urls"]
    assert set(urls) >= {"Homepage", "Documentation", "Repository", "Changelog", "Issues"}
    for name, url in urls.items():
        assert url.startswith(PROJECT_URL), f"{name}: {url}"
        path = repo_path(url)
        if path is not None:
            assert path.exists(), f"{name}: {url} points to nothing in the repository"


@pytest.mark.parametrize("path", [README, *DOC_FILES], ids=lambda p: p.name)
def test_coroutines_are_awaited_in_examples(path: Path) -> None:
    problems = []
    for block in blocks(path):
        if block.lang == "python":
            problems += [f"{block.where}: {p}" for p in unawaited(ast.parse(block.text))]
    for span in INLINE_CODE.findall(path.read_text(encoding="utf-8")):
        try:
            tree = ast.parse(span, mode="eval")
        except SyntaxError:
            continue  # not a Python expression (a command, a path, a name)
        problems += [f"{path.name}: `{span}`: {p}" for p in unawaited(tree)]
    assert not problems, "called without await:\n" + "\n".join(problems)


def test_readme_imports_what_the_package_exports() -> None:
    for block in blocks(README):
        if block.lang != "python":
            continue
        for node in ast.walk(ast.parse(block.text)):
            if isinstance(node, ast.ImportFrom) and node.module == "oban_powertools":
                for alias in node.names:
                    assert alias.name in oban_powertools.__all__, f"README imports {alias.name}"


def test_the_package_has_a_version_and_a_changelog_entry_for_it() -> None:
    version = PYPROJECT["project"]["version"]
    assert oban_powertools.__version__ == version
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[?{re.escape(version)}\]?", changelog, re.MULTILINE)
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
