"""The Django glue: path-prefix dispatch to the control plane, everything else to Django."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from oban_powertools import Powertools
from oban_powertools.contrib.django import PrefixDispatcher, mount
from tests.web.helpers import ORIGIN


async def stand_in_for_django(request: object) -> PlainTextResponse:
    return PlainTextResponse("served by the host")


async def test_requests_below_the_prefix_reach_the_control_plane(powertools: Powertools) -> None:
    host = Starlette(routes=[Route("/{path:path}", stand_in_for_django)])
    app = mount(host, powertools, prefix="/ops/jobs")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"x-test-user": "ops-demo", "origin": ORIGIN}
    ) as client:
        page = await client.get("/ops/jobs/")
        assert page.status_code == 200 and "Overview" in page.text
        # Links are built from root_path, so they stay below the prefix.
        assert 'href="/ops/jobs/cron"' in page.text
        assert (await client.get("/ops/jobs/static/powertools.css")).status_code == 200
        other = await client.get("/ops/jobsxyz")
        assert other.text == "served by the host"
        assert (await client.get("/admin/")).text == "served by the host"
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as anonymous:
        assert (await anonymous.get("/ops/jobs/")).status_code == 401


def test_prefix_must_be_a_plain_path() -> None:
    app = Starlette()
    for bad in ("ops/jobs", "/ops/jobs/", "/ops//jobs"):
        with pytest.raises(ValueError, match="prefix must look like"):
            PrefixDispatcher(app, app, bad)
