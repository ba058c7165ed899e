"""The one mutation pipeline against a real PostgreSQL: happy path and every error path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from oban import Oban

from oban_powertools import Powertools
from oban_powertools.actions import errors, get_action
from oban_powertools.actions.base import ConfirmStatement
from oban_powertools.cron.entries import CronEntrySpec, upsert_entry
from oban_powertools.seams import Resource
from tests.support.plans import documented_plan_hash
from tests.support.seams import (
    GUEST,
    OPERATOR,
    OTHER_OPERATOR,
    VIEWER,
    Actor,
    RoleAuth,
    make_powertools,
)

NIGHTLY = CronEntrySpec(
    name="nightly_sync",
    worker="app.workers.NightlySync",
    expression="0 2 * * *",
    timezone="Etc/UTC",
    overlap_policy="queue_one",
    catch_up_policy="latest",
)


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        async with powertools.db.transaction() as conn:
            await upsert_entry(conn, NIGHTLY)
        yield powertools


async def rows(pt: Powertools, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(sql, params)  # type: ignore[arg-type]
        return list(await cur.fetchall())


async def entry(pt: Powertools) -> dict[str, Any]:
    (row,) = await rows(pt, "SELECT * FROM powertools_cron_entries WHERE name = 'nightly_sync'")
    return row


async def audit(pt: Powertools) -> list[dict[str, Any]]:
    return await rows(pt, "SELECT * FROM powertools_audit_events ORDER BY id")


async def test_pause_nightly_sync_through_the_pipeline(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync", surface="web")
    assert preview.status == "ready" and preview.resource == "cron_entry:nightly_sync"
    assert preview.effect.startswith("Future claims stop until resumed")
    assert preview.before["nightly_sync"]["paused"] is False
    assert (await entry(pt))["paused"] is False  # a preview changes nothing

    result = await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage", surface="web")

    current = await entry(pt)
    assert current["paused"] is True
    assert current["paused_by_id"] == "ops-demo" and current["paused_reason"] == "upstream outage"
    (stored,) = await rows(pt, "SELECT * FROM powertools_previews")
    assert stored["status"] == "consumed" and stored["audit_event_id"] == result.audit_event_id
    (event,) = await audit(pt)
    assert event["id"] == result.audit_event_id
    assert (event["action"], event["command"]) == ("cron.paused", "pause_cron_entry")
    assert (event["resource_type"], event["resource_id"]) == ("cron_entry", "nightly_sync")
    assert (event["principal_id"], event["principal_label"]) == ("ops-demo", "Ops Demo")
    assert event["reason"] == "upstream outage" and event["preview_token"] == preview.token
    assert event["surface"] == "web" and event["outcome"] == "succeeded"
    assert event["before"]["paused"] is False and event["after"]["paused"] is True


async def test_resume_and_run_now(pt: Powertools) -> None:
    await pt.operator.pause_cron_entry(OPERATOR, "nightly_sync", reason="maintenance window")
    resumed = await pt.operator.resume_cron_entry(OPERATOR, "nightly_sync")
    assert resumed.after["nightly_sync"]["paused"] is False
    ran = await pt.operator.run_cron_entry(OPERATOR, "nightly_sync")
    job_id = ran.after["nightly_sync"]["run_now_job_id"]
    (job,) = await rows(pt, "SELECT * FROM oban_jobs WHERE id = %s", job_id)
    assert job["worker"] == "app.workers.NightlySync" and job["state"] == "available"
    assert job["meta"]["cron_name"] == "nightly_sync" and job["meta"]["cron_slot_kind"] == "manual"
    (slot,) = await rows(pt, "SELECT * FROM powertools_cron_slots")
    assert slot["kind"] == "manual" and slot["job_id"] == job_id
    assert [e["action"] for e in await audit(pt)] == ["cron.paused", "cron.resumed", "cron.run_now"]


async def test_pause_with_expiry_records_it(pt: Powertools) -> None:
    result = await pt.operator.pause_cron_entry(
        OPERATOR, "nightly_sync", reason="deploy", expires_in_minutes=30
    )
    assert result.after["nightly_sync"]["pause_expires_at"] is not None
    assert "resumes by itself" in result.preview.effect


@pytest.mark.parametrize("actor", [None, GUEST, VIEWER])
async def test_unauthorized_preview_is_denied_and_audited(
    pt: Powertools, actor: Actor | None
) -> None:
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(actor, "pause_cron_entry", "nightly_sync")
    assert (await entry(pt))["paused"] is False
    assert await rows(pt, "SELECT * FROM powertools_previews") == []
    (event,) = await audit(pt)
    assert (event["action"], event["outcome"], event["command"]) == (
        "security.denied",
        "denied",
        "pause_cron_entry",
    )
    assert event["principal_id"] == (actor.id if actor else "anonymous")


async def test_resource_scoped_operator(pt: Powertools) -> None:
    scoped = Actor(
        "ops-scoped", "Scoped", "operator", allowed_resources=frozenset({"queue:mailers"})
    )
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(scoped, "pause_cron_entry", "nightly_sync")
    limited = Actor(
        "ops-limited", "Limited", "operator", allowed_actions=frozenset({"run_cron_entry"})
    )
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.preview(limited, "pause_cron_entry", "nightly_sync")
    await pt.pipeline.preview(limited, "run_cron_entry", "nightly_sync")


async def test_input_errors_write_nothing(pt: Powertools) -> None:
    with pytest.raises(errors.UnknownAction):
        await pt.pipeline.preview(OPERATOR, "drop_tables", "nightly_sync")
    with pytest.raises(errors.UnknownTarget, match="no cron entry missing_entry"):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "missing_entry")
    with pytest.raises(errors.InvalidTargets):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "x'; DROP TABLE oban_jobs; --")
    with pytest.raises(errors.InvalidTargets):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", ["nightly_sync", "other"])
    with pytest.raises(errors.InvalidParams, match="takes expires_in_minutes, not bogus"):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync", {"bogus": 1})
    with pytest.raises(errors.InvalidParams, match="resume_cron_entry takes no parameters"):
        await pt.pipeline.preview(OPERATOR, "resume_cron_entry", "nightly_sync", {"limit": 2})
    with pytest.raises(errors.InvalidParams, match="between 1 and"):
        await pt.pipeline.preview(
            OPERATOR, "pause_cron_entry", "nightly_sync", {"expires_in_minutes": "0"}
        )
    with pytest.raises(errors.InvalidTargets, match="not a job id"):
        await pt.pipeline.preview(OPERATOR, "retry_job", ["12abc"])
    with pytest.raises(errors.PreviewNotFound):
        await pt.pipeline.execute(OPERATOR, "no-such-token", "reason here")
    with pytest.raises(errors.PreviewNotFound):
        await pt.pipeline.execute(OPERATOR, "x" * 5000, "reason here")
    assert await rows(pt, "SELECT * FROM powertools_previews") == []
    assert await audit(pt) == []


async def test_not_applicable(pt: Powertools) -> None:
    with pytest.raises(errors.NotApplicable, match="not paused"):
        await pt.pipeline.preview(OPERATOR, "resume_cron_entry", "nightly_sync")
    await pt.operator.pause_cron_entry(OPERATOR, "nightly_sync", reason="first pause")
    with pytest.raises(errors.NotApplicable, match="already paused"):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        (None, errors.ReasonRequired),
        ("   ", errors.ReasonRequired),
        ("no", errors.ReasonTooShort),
        ("x" * 1001, errors.ReasonTooLong),
        ("bad\x00reason", errors.InvalidReason),
        ("lone \ud800 surrogate", errors.InvalidReason),
    ],
)
async def test_reason_rules_leave_the_preview_ready(
    pt: Powertools, reason: str | None, error: type[Exception]
) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    with pytest.raises(error):
        await pt.pipeline.execute(OPERATOR, preview.token, reason)
    assert (await entry(pt))["paused"] is False
    stored = await pt.pipeline.get_preview(preview.token)
    assert stored is not None and stored.status == "ready"
    await pt.pipeline.execute(OPERATOR, preview.token, "now with a reason")
    assert (await entry(pt))["paused"] is True


async def test_second_confirm_changes_nothing_and_says_why(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    result = await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
    before = await entry(pt)
    with pytest.raises(errors.PreviewConsumed, match="already confirmed") as err:
        await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
    assert err.value.audit_event_id == result.audit_event_id
    assert await entry(pt) == before
    assert len(await audit(pt)) == 1


async def test_expired_preview(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    async with pt.db.connection() as conn:
        await conn.execute(
            "UPDATE powertools_previews SET expires_at = now() - interval '1 second'"
        )
    with pytest.raises(errors.PreviewExpired):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    assert (await entry(pt))["paused"] is False
    stored = await pt.pipeline.get_preview(preview.token)
    assert stored is not None and stored.status == "expired"
    with pytest.raises(errors.PreviewExpired):
        await pt.pipeline.execute(OPERATOR, preview.token, "too late")
    assert await audit(pt) == []


async def test_drifted_preview(pt: Powertools) -> None:
    mine = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    theirs = await pt.pipeline.preview(OTHER_OPERATOR, "pause_cron_entry", "nightly_sync")
    await pt.pipeline.execute(OTHER_OPERATOR, theirs.token, "their reason")
    with pytest.raises(errors.PreviewDrifted, match="nightly_sync"):
        await pt.pipeline.execute(OPERATOR, mine.token, "my reason")
    current = await entry(pt)
    assert current["paused_by_id"] == "ops-other" and current["paused_reason"] == "their reason"
    stored = await pt.pipeline.get_preview(mine.token)
    assert stored is not None and stored.status == "drifted"
    assert len(await audit(pt)) == 1


async def test_pause_drifts_when_the_entry_was_paused_and_resumed_in_between(
    pt: Powertools,
) -> None:
    # Unpaused again when the confirm comes (A -> B -> A): the version says it changed.
    mine = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    await pt.operator.pause_cron_entry(OTHER_OPERATOR, "nightly_sync", reason="their hold")
    await pt.operator.resume_cron_entry(OTHER_OPERATOR, "nightly_sync")
    with pytest.raises(errors.PreviewDrifted, match="nightly_sync"):
        await pt.pipeline.execute(OPERATOR, mine.token, "my reason")
    current = await entry(pt)
    assert current["paused"] is False and current["version"] == 3
    assert [e["command"] for e in await audit(pt)] == ["pause_cron_entry", "resume_cron_entry"]


async def test_pause_audits_the_locked_row_as_before_and_the_change_as_after(
    pt: Powertools,
) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    # A column drift ignores (the scheduler's bookkeeping) changes after the preview: the
    # audited before-state is the row as locked at confirm time, not the preview's copy.
    async with pt.db.connection() as conn:
        await conn.execute(
            "UPDATE powertools_cron_entries SET last_job_id = 4242 WHERE name = 'nightly_sync'"
        )
    result = await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
    (event,) = await audit(pt)
    assert event["before"]["last_job_id"] == 4242 and event["before"]["paused"] is False
    assert event["after"]["paused"] is True and event["after"]["version"] == 2
    assert event["before"]["version"] == 1
    assert result.after["nightly_sync"] == event["after"]


async def test_pause_preview_is_checked_and_stored_in_one_statement(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(
        OPERATOR, "pause_cron_entry", "nightly_sync", {"expires_in_minutes": "30"}
    )
    (stored,) = await rows(pt, "SELECT * FROM powertools_previews")
    current = await entry(pt)
    before = stored["before"]["nightly_sync"]
    assert before["version"] == current["version"] and before["paused"] is False
    assert before["expression"] == "0 2 * * *" and before["catch_up_policy"] == "latest"
    assert preview.before == stored["before"]
    assert "for 30 minutes" in stored["effect"] and stored["params"] == {"expires_in_minutes": 30}
    # The documented plan hash: action and parameters, then target:version.
    expected = documented_plan_hash(
        "pause_cron_entry", {"expires_in_minutes": 30}, f"nightly_sync:{current['version']}"
    )
    assert preview.plan_hash == stored["plan_hash"] == expected
    await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
    with pytest.raises(errors.NotApplicable, match="already paused"):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    with pytest.raises(errors.UnknownTarget):
        await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "no_such_entry")
    assert len(await rows(pt, "SELECT * FROM powertools_previews")) == 1


async def test_one_statement_and_transaction_confirms_record_events_alike(
    pt: Powertools,
) -> None:
    # A cron pause confirms in one statement, a job retry in a transaction: the events
    # the pipeline writes for them carry the same fields, set the same way.
    await pt.operator.pause_cron_entry(OPERATOR, "nightly_sync", reason="first")
    (job,) = await insert_jobs(pt, ["discarded"])
    preview = await pt.pipeline.preview(OPERATOR, "retry_job", [str(job)])
    await pt.pipeline.execute(OPERATOR, preview.token, "second")
    one, other = await audit(pt)
    assert (one["command"], other["command"]) == ("pause_cron_entry", "retry_job")
    for event in (one, other):
        assert (event["principal_id"], event["principal_type"], event["principal_label"]) == (
            "ops-demo",
            "user",
            "Ops Demo",
        )
        assert (event["surface"], event["outcome"]) == ("api", "succeeded")
        assert event["before"] is not None and event["after"] is not None
    assert one["reason"] == "first" and other["reason"] == "second"
    assert one["detail"].keys() == other["detail"].keys()
    assert {p["preview_token"] for p in (one, other)} == {
        r["token"] for r in await rows(pt, "SELECT token FROM powertools_previews")
    }
    assert {p["status"] for p in await rows(pt, "SELECT status FROM powertools_previews")} == {
        "consumed"
    }


async def test_an_action_statement_may_not_use_the_pipelines_parameter_names(
    pt: Powertools, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = get_action("pause_cron_entry")
    real = type(action).confirm_statement

    def clashing(self: Any, *args: Any) -> ConfirmStatement | None:
        statement = real(self, *args)
        assert statement is not None
        return ConfirmStatement(statement.sql, {**statement.params, "audit_reason": "forged"})

    monkeypatch.setattr(type(action), "confirm_statement", clashing)
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    with pytest.raises(ValueError, match="reserved"):
        await pt.pipeline.execute(OPERATOR, preview.token, "upstream outage")
    assert (await entry(pt))["paused"] is False and await audit(pt) == []


async def test_preview_belongs_to_its_actor(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    with pytest.raises(errors.PreviewOtherActor):
        await pt.pipeline.execute(OTHER_OPERATOR, preview.token, "hijack attempt")
    with pytest.raises(errors.PreviewOtherActor):
        await pt.pipeline.execute(None, preview.token, "anonymous attempt")
    assert (await entry(pt))["paused"] is False
    denials = [(e["action"], e["principal_id"], e["outcome"]) for e in await audit(pt)]
    assert denials == [
        ("security.denied", "ops-other", "denied"),
        ("security.denied", "anonymous", "denied"),
    ]
    stored = await pt.pipeline.get_preview(preview.token)
    assert stored is not None and stored.status == "ready"  # the owner can still confirm


async def test_authorization_is_checked_again_at_execute(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    demoted = Actor("ops-demo", "Ops Demo", "viewer")  # same principal, lost the right meanwhile
    with pytest.raises(errors.Unauthorized):
        await pt.pipeline.execute(demoted, preview.token, "still trying")
    assert (await entry(pt))["paused"] is False
    assert [e["action"] for e in await audit(pt)] == ["security.denied"]
    stored = await pt.pipeline.get_preview(preview.token)
    assert stored is not None and stored.status == "ready"


async def test_twenty_concurrent_confirms_apply_once(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    others = [make_powertools(pt.config.database_url) for _ in range(4)]
    for other in others:
        await other.start()
    try:
        instances = [pt, *others]
        outcomes = await asyncio.gather(
            *(
                instances[i % len(instances)].pipeline.execute(OPERATOR, preview.token, "race")
                for i in range(20)
            ),
            return_exceptions=True,
        )
    finally:
        for other in others:
            await other.stop()
    successes = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(successes) == 1
    assert all(isinstance(f, errors.PreviewConsumed) for f in failures) and len(failures) == 19
    assert len(await audit(pt)) == 1
    (row,) = await rows(pt, "SELECT version FROM powertools_cron_entries")
    assert row["version"] == 2  # exactly one change


async def test_audit_failure_rolls_back_the_mutation(pt: Powertools) -> None:
    preview = await pt.pipeline.preview(OPERATOR, "pause_cron_entry", "nightly_sync")
    async with pt.db.connection() as conn:
        # A real database failure at the audit insert, not a mocked writer.
        await conn.execute(
            "CREATE FUNCTION fail_audit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END; $$"
        )
        await conn.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON powertools_audit_events "
            "FOR EACH ROW EXECUTE FUNCTION fail_audit()"
        )
    with pytest.raises(psycopg.errors.RaiseException, match="audit storage unavailable"):
        await pt.pipeline.execute(OPERATOR, preview.token, "will not stick")
    assert (await entry(pt))["paused"] is False
    stored = await pt.pipeline.get_preview(preview.token)
    assert stored is not None and stored.status == "ready"
    async with pt.db.connection() as conn:
        await conn.execute("DROP TRIGGER fail_audit ON powertools_audit_events")
    await pt.pipeline.execute(OPERATOR, preview.token, "works once audit is back")
    assert (await entry(pt))["paused"] is True and len(await audit(pt)) == 1


async def insert_jobs(pt: Powertools, states: list[str]) -> list[int]:
    ids = []
    async with pt.db.transaction() as conn:
        for state in states:
            cur = await conn.execute(
                "INSERT INTO oban_jobs (worker, queue, state, attempt, max_attempts, args,"
                " discarded_at, completed_at, attempted_at)"
                " VALUES ('app.Worker', 'default', %s::oban_job_state, 3, 3, '{}',"
                " CASE WHEN %s = 'discarded' THEN timezone('UTC', now()) END,"
                " CASE WHEN %s = 'completed' THEN timezone('UTC', now()) END,"
                " timezone('UTC', now())) RETURNING id",
                (state, state, state),
            )
            row = await cur.fetchone()
            assert row is not None
            ids.append(row["id"])
    return ids


async def test_bulk_retry_applies_exactly_the_previewed_set_or_reports_drift(
    pt: Powertools,
) -> None:
    ids = await insert_jobs(pt, ["discarded"] * 5)
    untouched = await insert_jobs(pt, ["discarded"])
    preview = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
    assert preview.resource_id == "bulk:5" and "exactly these 5 jobs" in preview.effect
    # A worker (or another operator) changes two of them meanwhile.
    async with pt.db.connection() as conn:
        await conn.execute(
            "UPDATE oban_jobs SET state = 'available' WHERE id = ANY(%s)", (ids[1:3],)
        )
    with pytest.raises(errors.PreviewDrifted) as err:
        await pt.pipeline.execute(OPERATOR, preview.token, "retry after fix")
    assert err.value.drifted == [str(i) for i in ids[1:3]]
    states = {r["id"]: r["state"] for r in await rows(pt, "SELECT id, state FROM oban_jobs")}
    assert [states[i] for i in (ids[0], ids[3], ids[4])] == ["discarded"] * 3  # nothing applied

    again = [ids[0], ids[3], ids[4]]
    result = await pt.operator.retry_jobs(OPERATOR, again, reason="retry after fix")
    states = {r["id"]: r["state"] for r in await rows(pt, "SELECT id, state FROM oban_jobs")}
    assert [states[i] for i in again] == ["available"] * 3
    assert states[untouched[0]] == "discarded"
    event = (await audit(pt))[-1]
    assert event["resource_id"] == "bulk:3" and event["detail"]["targets"] == [
        str(i) for i in again
    ]
    assert set(result.after) == {str(i) for i in again}


async def test_bulk_preview_rejects_inapplicable_targets(pt: Powertools) -> None:
    ids = await insert_jobs(pt, ["discarded", "available"])
    with pytest.raises(errors.NotApplicable, match="a available job cannot be retried"):
        await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
    with pytest.raises(errors.UnknownTarget):
        await pt.pipeline.preview(OPERATOR, "retry_job", [str(ids[0]), "999999"])


async def test_set_preview_is_checked_and_stored_in_one_statement(pt: Powertools) -> None:
    ids = await insert_jobs(pt, ["discarded", "retryable", "completed"])
    preview = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
    (stored,) = await rows(pt, "SELECT * FROM powertools_previews")
    attempts = {r["id"]: r["attempt"] for r in await rows(pt, "SELECT id, attempt FROM oban_jobs")}
    states = ["discarded", "retryable", "completed"]
    assert stored["before"] == {
        str(i): {"state": s, "attempt": attempts[i]} for i, s in zip(ids, states, strict=True)
    }
    assert stored["targets"] == [str(i) for i in ids]
    assert stored["effect"] == preview.effect and "exactly these 3 jobs" in preview.effect
    # The documented plan hash of a set: action and params, then id:state:attempt in order.
    drift = ",".join(f"{i}:{s}:{attempts[i]}" for i, s in zip(ids, states, strict=True))
    assert preview.plan_hash == documented_plan_hash("retry_job", {}, drift)
    assert stored["plan_hash"] == preview.plan_hash
    # One job goes through the pipeline's own path (a full snapshot in Python): the same
    # definition, so the hash of the same plan over the same state is the same.
    single = await pt.pipeline.preview(OPERATOR, "retry_job", [str(ids[0])])
    assert single.plan_hash == documented_plan_hash(
        "retry_job", {}, f"{ids[0]}:discarded:{attempts[ids[0]]}"
    )
    assert (stored["actor_id"], stored["surface"], stored["status"]) == ("ops-demo", "api", "ready")


async def test_set_preview_names_missing_and_inapplicable_targets_and_stores_nothing(
    pt: Powertools,
) -> None:
    waiting = await insert_jobs(pt, ["available"] * 12)
    done = await insert_jobs(pt, ["completed"])
    with pytest.raises(errors.UnknownTarget) as missing:
        await pt.pipeline.preview(OPERATOR, "retry_job", ["999998", str(done[0]), "999999"])
    assert missing.value.ids == ["999998", "999999"]
    with pytest.raises(errors.NotApplicable) as problems:
        await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in done + waiting])
    message = str(problems.value)
    assert message.startswith("12 target(s) cannot take this action")
    assert f"{waiting[9]}: a available job cannot be retried" in message
    assert f"{waiting[10]}: " not in message  # ten examples, then the count says the rest
    assert await rows(pt, "SELECT * FROM powertools_previews") == []


class BatchAuth(RoleAuth):
    """RoleAuth with the optional batch method: answers a whole set in one call, async,
    as a host that looks permissions up in its database would."""

    def __init__(self, answer: Callable[[list[Resource]], Any] | None = None) -> None:
        super().__init__()
        self.batches: list[tuple[str, int]] = []
        self.direct = 0  # calls of authorize itself
        self.answer = answer

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        self.direct += 1
        return super().authorize(actor, action, resource)

    async def authorize_many(self, actor: Any, action: str, resources: list[Resource]) -> Any:
        self.batches.append((action, len(resources)))
        if self.answer is not None:
            return self.answer(resources)
        return [RoleAuth.authorize(self, actor, action, r) for r in resources]


async def test_bulk_actions_ask_authorize_many_once_per_set(db_url: str) -> None:
    auth = BatchAuth()
    async with make_powertools(db_url, auth=auth) as pt:
        *ids, spare = await insert_jobs(pt, ["discarded"] * 5)
        preview = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
        await pt.pipeline.execute(OPERATOR, preview.token, "retry after fix")
        # Preview and confirm each asked once for the set, never per job.
        assert auth.batches == [("retry_job", 4), ("retry_job", 4)] and auth.direct == 0
        one = await pt.pipeline.preview(OPERATOR, "retry_job", str(spare))
        assert one.resource_id == str(spare)
        assert len(auth.batches) == 2 and auth.direct == 1  # one target: authorize itself


@pytest.mark.parametrize(
    "answer",
    [
        lambda rs: [True] * (len(rs) - 1),  # one answer short
        lambda rs: [True] * (len(rs) + 1),  # one too many
        lambda rs: [True] * (len(rs) - 1) + [1],  # truthy is not True
        lambda rs: True,  # not one answer per resource
        lambda rs: None,
    ],
)
async def test_a_malformed_batch_answer_denies_and_writes_only_the_denial(
    db_url: str, answer: Callable[[list[Resource]], Any]
) -> None:
    async with make_powertools(db_url, auth=BatchAuth(answer)) as pt:
        ids = await insert_jobs(pt, ["discarded"] * 3)
        with pytest.raises(errors.Unauthorized):
            await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
        assert await rows(pt, "SELECT * FROM powertools_previews") == []
        assert [e["action"] for e in await audit(pt)] == ["security.denied"]


@asynccontextmanager
async def oban_client(pt: Powertools) -> AsyncIterator[Oban]:
    """A client-mode oban on its own pool (oban's queries expect tuple rows)."""
    pool = await Oban.create_pool(pt.config.database_url, min_size=1, max_size=2)
    try:
        yield Oban(pool=pool, node="contract-test")
    finally:
        await pool.close()


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in row.items()
        if k
        not in (
            "id",
            "scheduled_at",
            "inserted_at",
            "cancelled_at",
            "attempted_at",
            "discarded_at",
            "completed_at",
            "meta",
        )
    } | {"meta_keys": sorted(row["meta"]), "has_cancelled_at": row["cancelled_at"] is not None}


@pytest.mark.parametrize("state", ["completed", "discarded", "retryable", "available"])
async def test_retry_matches_obans_retry_many_jobs(pt: Powertools, state: str) -> None:
    ours, theirs = await insert_jobs(pt, [state, state])
    try:
        await pt.operator.retry_jobs(OPERATOR, [ours])
    except errors.NotApplicable:
        assert state == "available"  # oban leaves available jobs alone; we refuse up front
    async with oban_client(pt) as oban:
        await oban.retry_many_jobs([theirs])
    a, b = await rows(pt, "SELECT * FROM oban_jobs WHERE id = ANY(%s) ORDER BY id", [ours, theirs])
    assert _comparable(a) == _comparable(b)


@pytest.mark.parametrize("state", ["available", "scheduled", "retryable"])
async def test_cancel_matches_obans_cancel_many_jobs(pt: Powertools, state: str) -> None:
    ours, theirs = await insert_jobs(pt, [state, state])
    await pt.operator.cancel_jobs(OPERATOR, [ours], reason="bad payload")
    async with oban_client(pt) as oban:
        await oban.cancel_many_jobs([theirs])
    a, b = await rows(pt, "SELECT * FROM oban_jobs WHERE id = ANY(%s) ORDER BY id", [ours, theirs])
    assert a["state"] == "cancelled" and _comparable(a) == _comparable(b)


async def test_discard(pt: Powertools) -> None:
    (job,) = await insert_jobs(pt, ["retryable"])
    await pt.operator.discard_jobs(OPERATOR, [job], reason="poison message")
    (row,) = await rows(pt, "SELECT state, discarded_at FROM oban_jobs WHERE id = %s", job)
    assert row["state"] == "discarded" and row["discarded_at"] is not None
    with pytest.raises(errors.NotApplicable):
        await pt.operator.discard_jobs(OPERATOR, [job], reason="poison message")


async def test_queue_decisions_are_persisted_and_signalled(pt: Powertools) -> None:
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO oban_producers (uuid, name, node, queue, meta, started_at, updated_at)"
            " VALUES (gen_random_uuid(), 'Oban', 'node-1', 'mailers',"
            ' \'{"local_limit": 5, "paused": false}\', now(), now())'
        )
    listener = await psycopg.AsyncConnection.connect(pt.config.database_url, autocommit=True)
    try:
        await listener.execute('LISTEN "public.oban_signal"')
        await pt.operator.pause_queue(OPERATOR, "mailers", reason="SMTP provider outage")
        notice = await anext(listener.notifies(timeout=5))
        assert '"action": "pause"' in notice.payload and '"queue": "mailers"' in notice.payload
    finally:
        await listener.close()
    (state,) = await rows(pt, "SELECT * FROM powertools_queue_states")
    assert state["paused"] is True and state["reason"] == "SMTP provider outage"
    with pytest.raises(errors.NotApplicable):
        await pt.operator.pause_queue(OPERATOR, "mailers", reason="again")
    scaled = await pt.operator.scale_queue(OPERATOR, "mailers", 2, reason="provider rate limit")
    assert scaled.after["mailers"]["limit_override"] == 2
    with pytest.raises(errors.UnknownTarget):
        await pt.operator.pause_queue(OPERATOR, "no_such_queue", reason="typo")
    with pytest.raises(errors.InvalidParams):
        await pt.operator.scale_queue(OPERATOR, "mailers", 0, reason="zero")
    actions = [e["action"] for e in await audit(pt)]
    assert actions == ["queue.paused", "queue.scaled"]


async def test_powertools_can_start_again_after_stop(db_url: str) -> None:
    powertools = make_powertools(db_url)
    for _ in range(2):  # e.g. one TestClient (one app lifespan) per test in a host's suite
        async with powertools:
            async with powertools.db.connection() as conn:
                cur = await conn.execute("SELECT 1 AS one")
                assert await cur.fetchone() == {"one": 1}


async def test_bulk_checks_drift_in_the_update_itself_without_shipping_snapshots(
    pt: Powertools, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above INLINE_BEFORE_MAX targets the preview's before-state stays in the database and
    # the checked UPDATE reads it there; force that path with a small set.
    from oban_powertools.actions import pipeline

    monkeypatch.setattr(pipeline, "INLINE_BEFORE_MAX", 1)
    ids = await insert_jobs(pt, ["discarded", "retryable", "cancelled", "completed"])
    preview = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids])
    (stored,) = await rows(pt, "SELECT before FROM powertools_previews")
    assert stored["before"][str(ids[0])] == {"state": "discarded", "attempt": 3}
    async with pt.db.connection() as conn:
        await conn.execute("UPDATE oban_jobs SET attempt = 2 WHERE id = %s", (ids[2],))
    with pytest.raises(errors.PreviewDrifted) as err:
        await pt.pipeline.execute(OPERATOR, preview.token, "retry after fix")
    assert err.value.drifted == [str(ids[2])]
    states = {r["id"]: r["state"] for r in await rows(pt, "SELECT id, state FROM oban_jobs")}
    assert [states[i] for i in ids] == ["discarded", "retryable", "cancelled", "completed"]
    assert await audit(pt) == []

    again = [ids[0], ids[1], ids[3]]
    fresh = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in again])
    result = await pt.pipeline.execute(OPERATOR, fresh.token, "retry after fix")
    assert {t: s["state"] for t, s in result.after.items()} == {str(i): "available" for i in again}
    (event,) = await audit(pt)
    assert event["before"] == {
        "count": 3,
        "states": {"discarded": 1, "retryable": 1, "completed": 1},
    }
    assert event["after"] == {"count": 3, "states": {"available": 3}}
    assert event["detail"]["targets"] == [str(i) for i in again]


async def test_two_bulk_confirms_on_overlapping_sets_apply_one(pt: Powertools) -> None:
    ids = await insert_jobs(pt, ["discarded"] * 6)
    first = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids[:4]])
    second = await pt.pipeline.preview(OPERATOR, "retry_job", [str(i) for i in ids[2:]])
    other = make_powertools(pt.config.database_url)
    await other.start()
    try:
        outcomes = await asyncio.gather(
            pt.pipeline.execute(OPERATOR, first.token, "race one"),
            other.pipeline.execute(OPERATOR, second.token, "race two"),
            return_exceptions=True,
        )
    finally:
        await other.stop()
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    drifted = [o for o in outcomes if isinstance(o, errors.PreviewDrifted)]
    assert len(done) == 1 and len(drifted) == 1
    # The loser names exactly the overlap, which the winner changed, and applied nothing.
    assert drifted[0].drifted == [str(ids[2]), str(ids[3])]
    states = {r["id"]: r["state"] for r in await rows(pt, "SELECT id, state FROM oban_jobs")}
    applied = set(done[0].after)
    for job_id in ids:
        expected = "available" if str(job_id) in applied else "discarded"
        assert states[job_id] == expected
    assert len(await audit(pt)) == 1


@pytest.mark.parametrize("token", ["", "abc\x00def", "x" * 101, "../etc", "tok en", "t\ud800"])
async def test_malformed_tokens_are_not_found(pt: Powertools, token: str) -> None:
    with pytest.raises(errors.PreviewNotFound):
        await pt.pipeline.execute(OPERATOR, token, "a fine reason")
    assert await pt.pipeline.get_preview(token) is None
