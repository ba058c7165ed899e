"""Without their extra, the OpenTelemetry and Prometheus modules fail on import with an
error naming the extra to install."""

from __future__ import annotations

import importlib
import sys

import pytest

from oban_powertools.errors import ExtraNotInstalled, PowertoolsError


@pytest.mark.parametrize(
    ("module", "dependency", "extra"),
    [
        ("oban_powertools.contrib.otel", "opentelemetry", "otel"),
        ("oban_powertools.web.metrics", "prometheus_client", "prometheus"),
    ],
)
def test_the_module_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, dependency: str, extra: str
) -> None:
    # None in sys.modules makes every import of the package fail, as if not installed.
    for name in [n for n in sys.modules if n == dependency or n.startswith(f"{dependency}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, dependency, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ExtraNotInstalled) as raised:
        importlib.import_module(module)
    assert isinstance(raised.value, PowertoolsError)
    assert f'pip install "oban-powertools[{extra}]"' in str(raised.value)
    assert raised.value.extra == extra


def test_without_prometheus_the_app_has_no_metrics_route(monkeypatch: pytest.MonkeyPatch) -> None:
    from oban_powertools.web import routes
    from tests.support.seams import make_powertools

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    for module in ("oban_powertools.web.metrics", "oban_powertools.web.routes.metrics"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delattr(routes, "metrics", raising=False)
    app = make_powertools("postgresql://nobody@127.0.0.1:1/none").asgi_app()
    paths = {getattr(route, "path", None) for route in app.routes}  # type: ignore[attr-defined]
    assert "/metrics" not in paths and "/queues" in paths
