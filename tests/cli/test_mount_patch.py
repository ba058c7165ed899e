"""Patching an app module: only where it is unambiguous, and always to valid Python."""

from __future__ import annotations

import ast

import pytest

from oban_powertools.install.mount import existing_mount, plan_mount

CONFIG = "myapp.powertools_config"


def patched(source: str) -> str:
    plan = plan_mount(source, CONFIG)
    assert plan.state == "patch" and plan.text is not None, plan.detail
    tree = ast.parse(plan.text)
    assert existing_mount(tree) is not None
    return plan.text


def test_multi_line_call_with_trailing_comma() -> None:
    source = (
        "import fastapi\n\napp = fastapi.FastAPI(\n    title='x',\n    debug=True,\n)\n"
        "app.add_middleware(object)\n"
    )
    text = patched(source)
    assert "    debug=True, lifespan=powertools_lifespan,\n)" in text
    lines = text.splitlines()
    # The import follows the host's imports; the mount follows the whole assignment.
    assert lines[1] == f"from {CONFIG} import powertools, powertools_lifespan"
    assert lines.index('app.mount("/ops/jobs", powertools.asgi_app())') == lines.index(")") + 2


def test_non_ascii_before_the_insertion_point() -> None:
    text = patched('from starlette.applications import Starlette\napp = Starlette(debug="é✓")\n')
    assert 'app = Starlette(debug="é✓", lifespan=powertools_lifespan)' in text


def test_crlf_line_endings_are_kept() -> None:
    text = patched("from fastapi import FastAPI\r\napplication: FastAPI = FastAPI()\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert 'application.mount("/ops/jobs", powertools.asgi_app())\r\n' in text


def test_no_imports_and_no_final_newline() -> None:
    text = patched('"""Doc."""\napp = FastAPI()')
    assert text.splitlines()[1].startswith(f"from {CONFIG} import")


def test_kwargs_splat_leaves_the_lifespan_to_the_host() -> None:
    plan = plan_mount("from fastapi import FastAPI\napp = FastAPI(**settings)\n", CONFIG)
    assert plan.state == "patch" and not plan.lifespan
    assert plan.text is not None and "FastAPI(**settings)\n" in plan.text


@pytest.mark.parametrize(
    "source",
    [
        'app.mount("/ops/jobs", powertools.asgi_app())\n',
        'routes = [Mount("/ops/jobs/", app=x)]\n',
        "sub = pt.asgi_app()\n",
    ],
)
def test_an_existing_mount_is_recognised(source: str) -> None:
    assert plan_mount("app = FastAPI()\n" + source, CONFIG).state == "present"


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("def make():\n    return FastAPI()\n", "no top-level"),
        ("a = FastAPI()\nb = FastAPI()\n", "more than one top-level"),
        ("app = FastAPI(\n", "does not parse"),
        ("app = Flask(__name__)\n", "no top-level"),
    ],
)
def test_what_it_will_not_patch(source: str, why: str) -> None:
    plan = plan_mount(source, CONFIG)
    assert plan.state == "manual" and why in plan.detail and plan.text is None
