"""The bridge's HTTP client is an optional extra: needed only when ``bridge_url`` is set.

``sys.modules["httpx"] = None`` makes ``import httpx`` fail as it does in an environment
without the extra (the wheel tests check the same in a real one).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from oban_powertools import ConfigError
from oban_powertools.web import routes
from tests.support.seams import make_powertools

BRIDGE_MODULE = "oban_powertools.web.routes.bridge"
URL = "postgresql://nobody@127.0.0.1:1/none"  # never connected to: no app starts here


@pytest.fixture
def without_httpx(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "httpx", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, BRIDGE_MODULE, raising=False)
    # `from .routes import bridge` takes the package attribute when an earlier test
    # imported the module: forget that too, so the import really runs.
    monkeypatch.delattr(routes, "bridge", raising=False)
    yield
    # monkeypatch puts the real modules back; a half-imported bridge must not stay behind.
    sys.modules.pop(BRIDGE_MODULE, None)


def test_without_a_bridge_the_app_builds_without_httpx(without_httpx: None) -> None:
    app = make_powertools(URL).asgi_app()
    assert app is not None
    assert BRIDGE_MODULE not in sys.modules


def test_a_configured_bridge_without_httpx_names_the_extra(without_httpx: None) -> None:
    powertools = make_powertools(URL, bridge_url="http://127.0.0.1:4000")
    with pytest.raises(ConfigError) as caught:
        powertools.asgi_app()
    assert caught.value.setting == "bridge_url"
    assert "httpx" in caught.value.problem
    assert 'pip install "oban-powertools[bridge]"' in str(caught.value)


def test_a_configured_bridge_with_httpx_serves_its_routes() -> None:
    app = make_powertools(URL, bridge_url="http://127.0.0.1:4000").asgi_app()
    paths = {getattr(route, "path", None) for route in app.routes}  # type: ignore[attr-defined]
    assert {"/oban", "/oban/{path:path}"} <= paths
