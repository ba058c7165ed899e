"""Request forgery and injection: forged and cross-origin POSTs change nothing; markup in
every kind of data is rendered as text; SQL metacharacters in every filter and path
parameter are plain values; every response carries the security headers."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, unquote_plus

import httpx
from starlette.applications import Starlette

from oban_powertools import Powertools
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.web.security import Csrf
from tests.hostile.world import (
    CSRF_SECRET,
    OPERATOR,
    REASON_MARK,
    VIEWER,
    HostileAuth,
    RedactingDisplay,
    assert_security_headers,
    build,
    changed,
    client,
    csrf_for,
    denials,
    fingerprint,
    seed_markers,
    token_in,
)
from tests.web.helpers import MOUNT, ORIGIN, host_app, insert_job, insert_producer

USER = OPERATOR.username
PREVIEW = f"{MOUNT}/actions/preview"
CONFIRM = f"{MOUNT}/actions/confirm"
API_PREVIEW = f"{MOUNT}/api/actions/preview"
API_CONFIRM = f"{MOUNT}/api/actions/confirm"


async def ready_preview(app: Starlette) -> str:
    async with client(app, USER) as ops:
        response = await ops.post(
            PREVIEW,
            data={
                "csrf_token": csrf_for(USER),
                "action": "pause_cron_entry",
                "target": "nightly_sync",
            },
        )
        assert response.status_code == 200, response.text
        return token_in(response.text)


async def test_forged_and_cross_origin_posts_change_nothing(pt: Powertools, conn: Any) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    token = await ready_preview(app)
    now = time.time()
    good = csrf_for(USER)
    bad_tokens = {
        "missing": None,
        "other secret": Csrf("not-the-secret").token(USER),
        "other operator": csrf_for("ops-other"),
        "expired": Csrf(CSRF_SECRET).token(USER, now=now - 13 * 3600),
        "from the future": Csrf(CSRF_SECRET).token(USER, now=now + 3600),
        "garbage": "garbage",
        "empty": "",
        "overlong": good + "x" * 300,
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
    }
    origins: dict[str, dict[str, str | None]] = {
        "other site": {"origin": "https://evil.example"},
        "null origin": {"origin": "null"},
        "other port": {"origin": "http://testserver:8080"},
        "other scheme and host": {"origin": "https://testserver.evil.example"},
        "referer only, other site": {"origin": None, "referer": "https://evil.example/x"},
        "neither origin nor referer": {"origin": None},
    }
    forms = {
        PREVIEW: {"action": "pause_cron_entry", "target": "nightly_sync"},
        CONFIRM: {"token": token, "reason": "forged request"},
    }
    before = await fingerprint(conn)
    denied = await denials(conn)
    tried = 0
    for url, form in forms.items():
        for name, csrf in bad_tokens.items():
            data = {**form, **({"csrf_token": csrf} if csrf is not None else {})}
            async with client(app, USER) as ops:
                response = await ops.post(url, data=data)
                tried += 1
                assert response.status_code == 403, (url, name)
                assert "Nothing was changed" in response.text, (url, name)
                assert_security_headers(response)
                # The same bad token as a header (what htmx sends) is refused too.
                if csrf:
                    response = await ops.post(url, data=form, headers={"x-csrf-token": csrf})
                    tried += 1
                    assert response.status_code == 403, (url, name, "header")
        for name, headers in origins.items():
            async with client(app, USER) as ops:
                for header, value in headers.items():
                    if value is None:
                        ops.headers.pop(header, None)
                    else:
                        ops.headers[header] = value
                for body in ({"data": {**form, "csrf_token": good}}, {"files": {"x": b"1"}}):
                    response = await ops.post(url, **body)  # type: ignore[arg-type]
                    tried += 1
                    assert response.status_code == 403, (url, name, body)
                    assert_security_headers(response)
        # A cross-site page cannot send JSON with a custom header, but even a same-site
        # JSON body without the form token is refused by the form endpoints.
        async with client(app, USER) as ops:
            response = await ops.post(url, json={**form})
            tried += 1
            assert response.status_code == 403, (url, "json to a form endpoint")
            response = await ops.get(url)
            tried += 1
            assert response.status_code == 405, (url, "GET never mutates")

    api_bodies = {
        API_PREVIEW: {"action": "pause_cron_entry", "targets": ["nightly_sync"]},
        API_CONFIRM: {"token": token, "reason": "forged request"},
    }
    for url, body in api_bodies.items():
        async with client(app, USER) as ops:
            raw = json.dumps(body).encode()
            for origin in ("https://evil.example", "null", "http://testserver:8080"):
                response = await ops.post(url, json=body, headers={"origin": origin})
                tried += 1
                assert response.status_code == 403, (url, origin)
                assert response.json()["error"]["code"] == "cross_origin"
            # Only application/json, which a cross-site form cannot send.
            for content_type in (
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
                "application/jsonx",
            ):
                response = await ops.post(url, content=raw, headers={"content-type": content_type})
                tried += 1
                assert response.status_code == 415, (url, content_type)
                assert_security_headers(response)
    assert changed(before, await fingerprint(conn)) == []
    assert await denials(conn) == denied
    assert tried >= 70  # the loops really ran (76 cases today)

    # And the genuine request, same origin with a good token, still works.
    async with client(app, USER) as ops:
        response = await ops.post(
            CONFIRM, data={"csrf_token": good, "token": token, "reason": "genuine pause"}
        )
        assert response.status_code == 303


# Markup and script in every shape a value can take. Each piece is unique, so finding it
# unescaped anywhere means that value reached the page as markup.
PAYLOAD = (
    '<script>alert("xss-1")</script>"><img src=x onerror=alert(2)>'
    "'><svg/onload=alert(3)></textarea><script src=//e.example/4.js></script>"
    '<a href="javascript:alert(5)">5</a><div hx-get="/evil" hx-trigger="load">6</div>'
    "{{7*7}}{% if 1 %}xss-7{% endif %}"
)
assert len("app." + PAYLOAD) <= 255  # a worker name may be at most 255 characters
# Raw text that would break out of an element or attribute.
DANGEROUS = ("<script>alert", "<img src=x", "<svg/onload", "</textarea><script", '"><img')
ESCAPED = "&lt;script&gt;alert(&#34;xss-1&#34;)&lt;/script&gt;"
# The same inside JSON shown on a page (args, meta, snapshots): quotes JSON-escaped first.
ESCAPED_IN_JSON = "&lt;script&gt;alert(\\&#34;xss-1\\&#34;)&lt;/script&gt;"
TEMPLATE_EVALUATED = re.compile(r"(?<!\{% if 1 %\})xss-7")


def strings(node: Any) -> list[str]:
    """Every string value inside decoded JSON."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


CHART_SVG_ATTRIBUTES = {"class", "role", "aria-labelledby", "viewbox", "width", "focusable"}


class Tags(HTMLParser):
    """Every element a browser would build from the page, with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert(response: httpx.Response, where: str) -> None:
    text = response.text
    for piece in DANGEROUS:
        assert piece not in text, (where, piece)
    parser = Tags()
    parser.feed(text)
    for tag, attrs in parser.tags:
        # The layout's two scripts load static files; no other script, image or frame.
        if tag == "script":
            assert (attrs.get("src") or "").startswith(f"{MOUNT}/static/"), (where, attrs)
        if tag == "svg":
            # The overview's own charts (web/charts.py): exactly these attributes, no others.
            assert attrs.get("class") == "bar-chart" and attrs.get("role") == "img", (where, attrs)
            assert set(attrs) <= CHART_SVG_ATTRIBUTES, (where, attrs)
        assert tag not in ("img", "iframe", "object", "embed"), (where, tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (where, tag, attrs)
            if name in ("href", "src", "action", "formaction", "hx-get", "hx-post"):
                # Every link stays on this site: no scheme, no other host.
                url = value or ""
                assert url.startswith(("/", "#")) and not url.startswith("//"), (where, attrs)
    # Evaluated as a template, "{% if 1 %}" would vanish and leave "xss-7" on its own.
    # (Links carry it URL-encoded, so decode those first.)
    found = TEMPLATE_EVALUATED.search(unquote_plus(text))
    assert found is None, (where, found)


async def test_markup_in_every_value_is_rendered_inert(db_url: str, conn: Any) -> None:
    auth = HostileAuth()
    auth.labels[USER] = "Ops " + PAYLOAD  # a hostile actor label, from the host's seam
    powertools = build(db_url, auth=auth)
    await upsert_entry(
        conn,
        CronEntrySpec(
            # Names are restricted to letters, digits and _.:- (the database checks it too);
            # every other field of an entry is free text.
            name="x:y.z-w_v",
            worker="app." + PAYLOAD,
            queue="cronq",
            expression="0 2 * * *",
            args={PAYLOAD: PAYLOAD, "nested": {"list": [PAYLOAD]}},
        ),
    )
    hostile_queue = "q" + PAYLOAD
    await insert_producer(conn, queue=hostile_queue, node="node" + PAYLOAD)
    job = await insert_job(
        conn,
        state="retryable",
        worker="app.Worker" + PAYLOAD,
        queue=hostile_queue,
        args={"note": PAYLOAD, PAYLOAD: 1},
        meta={"trace": PAYLOAD},
        errors=[{"attempt": 1, "at": "2030-01-01T00:00:00+00:00", "error": PAYLOAD}],
        attempt=1,
        tags=[PAYLOAD.lower()],
        attempted_by=["node" + PAYLOAD],
    )
    app = host_app(powertools)
    try:
        async with client(app, USER) as ops:
            # A hostile reason, recorded by an actor with a hostile label.
            panel = await ops.post(
                PREVIEW,
                data={
                    "csrf_token": csrf_for(USER),
                    "action": "pause_cron_entry",
                    "target": "x:y.z-w_v",
                    "return_to": "javascript:alert(1)",
                },
            )
            assert panel.status_code == 200
            assert_inert(panel, "preview panel")
            assert f'href="{MOUNT}/"' in panel.text  # the refused return_to fell back
            done = await ops.post(
                CONFIRM,
                data={
                    "csrf_token": csrf_for(USER),
                    "token": token_in(panel.text),
                    "reason": "because " + PAYLOAD,
                },
            )
            assert done.status_code == 303
            result_path = done.headers["location"]
            discard = await ops.post(
                PREVIEW,
                data={"csrf_token": csrf_for(USER), "action": "discard_job", "target": str(job)},
            )
            assert_inert(discard, "job preview panel")
            # An error message quoting the hostile input back.
            refused = await ops.post(
                PREVIEW,
                data={"csrf_token": csrf_for(USER), "action": PAYLOAD, "target": PAYLOAD},
            )
            assert refused.status_code == 404
            assert_inert(refused, "error panel")
            event = int(result_path.rsplit("/", 1)[1])
            pages = [
                "/",
                "/cron",
                "/cron/x:y.z-w_v",
                "/queues",
                "/jobs",
                f"/jobs/{job}",
                "/audit",
                f"/audit/{event}",
                result_path.removeprefix(MOUNT),
                "/forensics",
                "/forensics?resource_type=cron_entry&resource_id=x:y.z-w_v",
                f"/forensics?resource_type=job&resource_id={job}",
            ]
            escaped_pages = 0
            for path in pages:
                response = await ops.get(MOUNT + path)
                assert response.status_code == 200, path
                assert_security_headers(response)
                assert_inert(response, path)
                escaped_pages += ESCAPED in response.text or ESCAPED_IN_JSON in response.text
            # Filters and subjects echo the operator's own hostile input: as text too.
            echoed = [
                httpx.URL(f"{MOUNT}/jobs", params={"queue": hostile_queue}),
                httpx.URL(f"{MOUNT}/jobs", params={"worker": PAYLOAD, "q": PAYLOAD}),
                httpx.URL(f"{MOUNT}/audit", params={"resource_id": PAYLOAD, "actor": PAYLOAD}),
                httpx.URL(
                    f"{MOUNT}/forensics", params={"resource_type": "queue", "resource_id": PAYLOAD}
                ),
                httpx.URL(
                    f"{MOUNT}/forensics",
                    params={"resource_type": "queue", "resource_id": hostile_queue},
                ),
                httpx.URL(f"{MOUNT}/forensics", params={"resource_type": PAYLOAD}),
            ]
            for url in echoed:
                response = await ops.get(url)
                assert response.status_code in (200, 400), url
                assert_inert(response, str(url))
                escaped_pages += ESCAPED in response.text or ESCAPED_IN_JSON in response.text
            # Every page above that shows the data shows it escaped: the check is not
            # passing because nothing was rendered.
            assert escaped_pages >= 12
            detail = (await ops.get(f"{MOUNT}/jobs/{job}")).text
            assert "{{7*7}}" in detail and ESCAPED in detail
            assert (
                'Acting as <strong><span class="principal"><span class="principal-label">Ops &lt;script&gt;'
                in detail
            )

            # The JSON export is a download of data, never a page the browser renders.
            for subject in (("job", str(job)), ("cron_entry", "x:y.z-w_v")):
                bundle = await ops.get(
                    f"{MOUNT}/forensics/bundle.json",
                    params={"resource_type": subject[0], "resource_id": subject[1]},
                )
                assert bundle.status_code == 200
                assert bundle.headers["content-type"].startswith("application/json")
                assert bundle.headers["content-disposition"].startswith("attachment;")
                assert bundle.headers["x-content-type-options"] == "nosniff"
                # The data is in the download as data (exact, unescaped JSON strings).
                assert any('<script>alert("xss-1")' in text for text in strings(bundle.json()))
            api = await ops.post(API_PREVIEW, json={"action": "retry_job", "targets": [PAYLOAD]})
            assert api.status_code == 400
            assert api.headers["content-type"] == "application/json"
    finally:
        await powertools.stop()
    cur = await conn.execute("SELECT reason, principal_label FROM powertools_audit_events")
    row = await cur.fetchone()
    # The audit log keeps the evidence exactly as given; only its rendering escapes it.
    assert row["reason"] == "because " + PAYLOAD and row["principal_label"].endswith(PAYLOAD)


SQL_PAYLOADS = (
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "'; DROP TABLE oban_jobs; --",
    "1; DELETE FROM powertools_audit_events",
    "1) OR (1=1",
    "1 UNION SELECT id FROM oban_jobs",
    "%",
    "_",
    "%' AND '%'='",
    "\\'",
    "$1",
    "%s",
    "%(state)s",
    "{0}",
    "$$; SELECT pg_sleep(0) $$",
    "::text",
    "ʼ OR ʼ1ʼ=ʼ1",
    "/*",
    "*/",
)


async def test_sql_metacharacters_are_plain_values(pt: Powertools, conn: Any) -> None:
    seeded = await seed_markers(conn)
    app = host_app(pt)
    job_links = [f'href="{MOUNT}/jobs/{j}"' for j in seeded.jobs.values()]
    filters = {
        "/jobs": ("state", "queue", "worker", "tag", "q", "before"),
        "/audit": (
            "resource_type",
            "resource_id",
            "action",
            "actor",
            "outcome",
            "since",
            "until",
            "before",
        ),
        "/forensics": ("resource_type", "resource_id"),
        "/forensics/bundle.json": ("resource_type", "resource_id"),
    }
    paths = (
        "/cron/{}",
        "/jobs/{}",
        "/audit/{}",
        "/actions/results/{}",
        "/api/previews/{}",
    )
    before = await fingerprint(conn)
    tried = 0
    async with client(app, USER) as ops:
        for payload in SQL_PAYLOADS:
            for page, names in filters.items():
                for name in names:
                    params = {name: payload}
                    if page.startswith("/forensics") and name == "resource_id":
                        params["resource_type"] = "job"
                    response = await ops.get(MOUNT + page, params=params)
                    tried += 1
                    where = (page, name, payload)
                    assert response.status_code in (200, 400), (where, response.text[:300])
                    assert_security_headers(response)
                    # A filter that matches nothing shows nothing: no injected widening.
                    for link in job_links:
                        assert link not in response.text, where
                    if page == "/audit" and response.status_code == 200:
                        assert REASON_MARK not in response.text, where
            for template in paths:
                response = await ops.get(MOUNT + template.format(quote(payload, safe="")))
                tried += 1
                if response.status_code == 307:
                    # A value ending in "/" ("*/"): Starlette's slash redirect, kept local.
                    assert response.headers["location"].startswith(f"{ORIGIN}{MOUNT}/")
                else:
                    assert response.status_code == 404, (template, payload)
                assert_security_headers(response)
            for body in (
                {"action": "retry_job", "targets": [payload]},
                {"action": "pause_cron_entry", "targets": [payload]},
                {"action": "pause_queue", "targets": [payload]},
                {"action": payload, "targets": ["nightly_sync"]},
                {
                    "action": "scale_queue",
                    "targets": ["marker_queue"],
                    "params": {"limit": payload},
                },
            ):
                response = await ops.post(API_PREVIEW, json=body)
                tried += 1
                assert response.status_code in (400, 404), (body, response.text)
            response = await ops.post(API_CONFIRM, json={"token": payload, "reason": payload})
            tried += 1
            assert response.status_code == 404
            response = await ops.post(
                CONFIRM, data={"csrf_token": csrf_for(USER), "token": payload, "reason": payload}
            )
            tried += 1
            assert response.status_code == 404
    assert changed(before, await fingerprint(conn)) == []
    assert tried >= 20 * 30
    # The jobs filters do match what they should: the payload checks above were not
    # passing because the list was always empty.
    async with client(app, VIEWER.username) as viewer:
        listing = await viewer.get(f"{MOUNT}/jobs", params={"queue": "marker_queue"})
        assert all(link in listing.text for link in job_links)


async def test_security_headers_on_every_kind_of_response(pt: Powertools, conn: Any) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    seen: dict[int, int] = {}

    def check(response: httpx.Response) -> None:
        assert_security_headers(response)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    async with client(app, USER) as ops, client(app) as anonymous:
        async with client(app, "ops-guest") as guest:
            for method in ("GET", "HEAD"):
                for path in ("/", "/cron", "/static/powertools.css", "/static/nope.css"):
                    check(await ops.request(method, MOUNT + path))
                check(await guest.request(method, MOUNT + "/cron"))
                check(await anonymous.request(method, MOUNT + "/cron"))
        check(await ops.get(MOUNT + "/no/such/page"))  # 404
        check(await ops.delete(MOUNT + "/cron"))  # 405
        check(await ops.get(MOUNT + "/jobs?state=bogus"))  # 400
        check(await ops.get(MOUNT + "/jobs?q=" + "x" * 20_000))  # 414
        check(await ops.get(MOUNT + "/jobs?q=%00"))  # 400
        check(await ops.post(PREVIEW, data={"action": "x"}))  # 403 (CSRF)
        check(await ops.post(PREVIEW, content=b"x" * (5 * 1024 * 1024)))  # 413
        check(await ops.post(API_PREVIEW, content=b"{}", headers={"content-type": "text/plain"}))
        token = await ready_preview(app)
        confirmed = await ops.post(
            CONFIRM, data={"csrf_token": csrf_for(USER), "token": token, "reason": "headers"}
        )
        check(confirmed)  # 303
        check(await ops.post(API_CONFIRM, json={"token": token, "reason": "again"}))  # 409
    # An unexpected failure: a display policy that breaks its contract on one value.

    class Broken(RedactingDisplay):
        def display(self, kind: str, value: Any, context: Any) -> Any:
            return 42 if kind == "worker" else super().display(kind, value, context)

    broken = build(pt.config.database_url, display=Broken())
    try:
        transport = httpx.ASGITransport(app=host_app(broken), raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"x-test-user": USER}
        ) as c:
            failed = await c.get(MOUNT + "/cron")
            check(failed)
            assert failed.status_code == 500
            assert "Something went wrong" in failed.text and "TypeError" not in failed.text
            api = await c.get(MOUNT + "/api/previews/whatever")
            check(api)
    finally:
        await broken.stop()
    assert set(seen) >= {200, 303, 400, 401, 403, 404, 405, 409, 413, 414, 415, 500}, seen
