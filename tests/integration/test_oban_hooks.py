"""Contract tests for the oban hooks Powertools registers (oban 0.7's private registry).

One test per hook proves ``Oban(...)`` really calls it with our config and really starts
what it returns, and that an instance without our config gets oban's defaults. If an
oban release renames or stops calling a hook, these fail first.
"""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import oban._scheduler as oban_scheduler
import pytest
from oban import Oban, worker
from oban._extensions import _extensions, get_ext, put_ext
from oban._metrics import Metrics
from oban._scheduler import Scheduler
from oban._stager import Stager
from psycopg_pool import AsyncConnectionPool

from oban_powertools import ConfigError, JobArgsInvalid, LimitOptionError, Powertools
from oban_powertools.cron.entries import CronEntrySpec
from oban_powertools.runtime import Runtime
from oban_powertools.runtime import hooks as oban_hooks
from oban_powertools.runtime.instance import install_hooks
from oban_powertools.runtime.services import MetricsService, SchedulerService, StagerService
from tests.support.seams import make_powertools
from tests.support.waiting import eventually


@pytest.fixture
async def pt(db_url: str) -> AsyncIterator[Powertools]:
    powertools = make_powertools(db_url)
    async with powertools:
        yield powertools


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool]:  # type: ignore[type-arg]
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as opened:
        yield opened


@pytest.fixture
def oban_cron_registry() -> Iterator[None]:
    """Whatever a test registers with @worker(cron=...) is forgotten afterwards."""
    saved = list(oban_scheduler._scheduled_entries)
    yield
    oban_scheduler._scheduled_entries[:] = saved


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(_extensions)
    yield
    _extensions.clear()
    _extensions.update(saved)


async def rows(pt: Powertools, sql: str) -> list[dict[str, Any]]:
    async with pt.db.connection() as conn:
        cur = await conn.execute(sql)  # type: ignore[arg-type]
        return list(await cur.fetchall())


# -- scheduler.build -------------------------------------------------------------------------


async def test_scheduler_build_replaces_obans_scheduler_and_syncs_declarations(
    pt: Powertools,
    pool: AsyncConnectionPool,
    oban_cron_registry: None,  # type: ignore[type-arg]
) -> None:
    @worker(queue="reports", priority=2, cron={"expr": "0 3 * * *", "timezone": "Europe/Berlin"})
    class NightlySync:
        async def process(self, job: Any) -> None:
            return None

    explicit = CronEntrySpec(
        name="hourly_digest", worker="app.Digest", expression="@hourly", overlap_policy="skip"
    )
    runtime = Runtime(pt, declarations=[explicit])
    options = runtime.oban_options(scheduler={"timezone": "America/Chicago"})
    oban = Oban(pool=pool, node="hooks-a", queues={"default": 1}, **options)

    # Built by our hook, instead of oban's Scheduler (which must never run code entries).
    assert isinstance(oban._scheduler, SchedulerService)
    assert not isinstance(oban._scheduler, Scheduler)
    assert runtime.scheduler is oban._scheduler.scheduler
    assert runtime.scheduler.node == "hooks-a" and runtime.scheduler.prefix == "public"
    assert runtime.default_timezone == "America/Chicago"
    assert "powertools" in options["scheduler"]  # the host's dict is left as it was

    await oban.start()
    try:
        assert runtime.scheduler.running
        synced = await rows(
            pt,
            "SELECT name, source, worker, queue, expression, timezone, overlap_policy, "
            "job_options FROM powertools_cron_entries ORDER BY name",
        )
    finally:
        await oban.stop()
    assert not runtime.scheduler.running
    assert [(r["name"], r["source"], r["expression"], r["timezone"]) for r in synced] == [
        ("hourly_digest", "code", "@hourly", "Etc/UTC"),
        ("nightly_sync", "code", "0 3 * * *", "Europe/Berlin"),
    ]
    nightly = synced[1]
    assert nightly["worker"].endswith("NightlySync") and nightly["queue"] == "reports"
    assert nightly["job_options"]["priority"] == 2


async def test_without_our_config_oban_builds_its_own_components(
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    install_hooks()
    oban = Oban(pool=pool, node="plain", queues={"default": 1}, stager={"interval": 0.5})
    assert type(oban._scheduler) is Scheduler
    assert type(oban._stager) is Stager and oban._stager._interval == 0.5


# -- stager.build ----------------------------------------------------------------------------


async def test_stager_build_runs_obans_stager_and_the_queue_state_applier(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    async with pt.db.connection() as conn:
        await conn.execute(
            "INSERT INTO powertools_queue_states (queue, paused, limit_override) "
            "VALUES ('default', true, 4)"
        )
    runtime = Runtime(pt, declarations=[], import_oban_cron=False)
    oban = Oban(
        pool=pool,
        node="hooks-b",
        queues={"default": 10},
        **runtime.oban_options(stager={"interval": 0.25}),
    )
    assert isinstance(oban._stager, StagerService)
    # oban's own stager, built from the rest of the config, is inside
    assert type(oban._stager.stager) is Stager and oban._stager.stager._interval == 0.25
    assert runtime.applier is oban._stager.applier
    assert runtime.applier._producers is oban._producers  # the hook's producers

    await oban.start()
    try:
        info = oban.check_queue("default")
        assert info is not None and info.paused and info.limit == 4
        assert oban._stager.stager._loop_task is not None  # oban's stager runs too
    finally:
        await oban.stop()


# -- metrics.build ---------------------------------------------------------------------------


async def test_metrics_build_broadcasts_the_stored_entries_to_oban_web(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    paused = CronEntrySpec(name="nightly_sync", worker="app.NightlySync", expression="0 2 * * *")
    digest = CronEntrySpec(
        name="hourly_digest", worker="app.Digest", expression="@hourly", timezone="Europe/Berlin"
    )
    runtime = Runtime(pt, declarations=[paused, digest], import_oban_cron=False)
    options = runtime.oban_options(metrics={"interval": 0.05, "cronitor_interval": 0.05})
    oban = Oban(pool=pool, name="Oban", node="hooks-m", queues={"default": 1}, **options)
    assert isinstance(oban._metrics, MetricsService)
    assert type(oban._metrics.metrics) is Metrics  # oban's own looper, built by oban
    assert oban._metrics.metrics._interval == 0.05

    crontabs: list[dict[str, Any]] = []
    await oban.start()
    try:
        async with pt.db.connection() as conn:
            await conn.execute("UPDATE powertools_cron_entries SET paused = true, paused_at = now() "
                               "WHERE name = 'nightly_sync'")  # fmt: skip
        await oban._notifier.listen("cronitor", lambda _c, payload: crontabs.append(payload))
        await eventually(lambda: any(c.get("node") == "hooks-m" for c in crontabs))
    finally:
        await oban.stop()
    mine = [c for c in crontabs if c.get("node") == "hooks-m"]
    assert mine[-1]["name"] == "Oban"
    assert mine[-1]["crontab"] == [
        ["@hourly", "app.Digest", {"name": "hourly_digest", "paused": False,
                                   "timezone": "Europe/Berlin"}],
        ["0 2 * * *", "app.NightlySync", {"name": "nightly_sync", "paused": True,
                                          "timezone": "Etc/UTC"}],
    ]  # fmt: skip


async def test_without_metrics_asked_for_oban_builds_none(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    options = Runtime(pt, declarations=[]).oban_options()
    assert "metrics" not in options  # metrics stay off unless the host turns them on
    assert Oban(pool=pool, node="hooks-n", **options)._metrics is None


# -- chaining, idempotence, refusals -------------------------------------------------------------


def test_hooks_delegate_untouched_and_chain_to_previous_registrations(
    pt: Powertools, registry: None
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def previous_scheduler(config: dict[str, Any], **kw: Any) -> str:
        calls.append(("scheduler", config))
        return "their scheduler"

    def previous_stager(config: dict[str, Any], **kw: Any) -> str:
        calls.append(("stager", config))
        return "their stager"

    _extensions.clear()
    put_ext("scheduler.build", previous_scheduler)
    put_ext("stager.build", previous_stager)
    install_hooks()
    install_hooks()  # idempotent: no double wrapping
    scheduler_build = get_ext("scheduler.build", previous_scheduler)
    stager_build = get_ext("stager.build", previous_stager)
    assert scheduler_build.previous is previous_scheduler  # type: ignore[attr-defined]
    assert stager_build.previous is previous_stager  # type: ignore[attr-defined]
    assert oban_hooks.installed()

    plain = {"timezone": "UTC"}
    assert scheduler_build(plain, leader=None, notifier=None, query=None) == "their scheduler"
    assert stager_build(plain, notifier=None, producers={}, query=None) == "their stager"
    assert calls == [("scheduler", plain), ("stager", plain)]
    assert calls[0][1] is plain  # passed on as given

    calls.clear()
    runtime = Runtime(pt)
    query = types.SimpleNamespace(_prefix="public")
    built = stager_build(
        {"interval": 2, "powertools": runtime}, notifier=None, producers={}, query=query
    )
    assert calls == [("stager", {"interval": 2})]  # previous hook builds the inner stager
    assert isinstance(built, StagerService) and built.stager == "their stager"
    leader = types.SimpleNamespace(_node="n1", is_leader=False)
    built = scheduler_build({"powertools": runtime}, leader=leader, notifier=None, query=query)
    assert isinstance(built, SchedulerService) and built.scheduler.node == "n1"
    assert len(calls) == 1  # our scheduler replaces theirs for this instance


def test_installed_oban_pro_is_refused_with_a_clear_error(
    pt: Powertools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "oban_pro", types.ModuleType("oban_pro"))
    with pytest.raises(ConfigError, match=r"^oban_pro: is installed.*does not chain"):
        install_hooks()
    with pytest.raises(ConfigError, match="oban_pro"):
        pt.oban_options()


def test_misconfiguration_fails_when_oban_is_built(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(ConfigError, match=r"^prefix: the Oban instance uses prefix 'ops'"):
        Oban(pool=pool, node="x", prefix="ops", **pt.oban_options())
    with pytest.raises(ConfigError, match="unknown option"):
        Oban(pool=pool, node="x", **pt.oban_options(scheduler={"interval": 5}))
    with pytest.raises(ConfigError, match="expected an oban_powertools Runtime"):
        install_hooks()
        Oban(pool=pool, node="x", scheduler={"powertools": object()})
    options = pt.oban_options()
    Oban(pool=pool, node="x", queues={"default": 1}, **options)
    with pytest.raises(ConfigError, match="once per Oban instance"):
        Oban(pool=pool, node="y", queues={"default": 1}, **options)


# -- query.insert_jobs -----------------------------------------------------------------------


async def test_insert_jobs_inserts_unique_batches_and_leaves_plain_ones_to_oban(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    registry: None,
) -> None:
    calls: list[int] = []
    install_hooks()
    # Count what reaches oban's own insert (the wrapped previous hook).
    wrapped = get_ext("query.insert_jobs", None)
    original = wrapped.previous

    async def counting(query: Any, jobs: list[Any], conn: Any = None) -> Any:
        calls.append(len(jobs))
        return await original(query, jobs, conn)

    put_ext("query.insert_jobs", oban_hooks.wrap_insert_jobs(counting))
    oban = Oban(pool=pool, node="hooks-i", queues={})

    @worker(queue="hooked", unique={"period": 60})
    class Once:
        async def process(self, job: Any) -> None:
            return None

    plain = await oban.enqueue(Once.new({"a": 1}, unique=None))
    first = await oban.enqueue(Once.new({"a": 2}))
    second = await oban.enqueue(Once.new({"a": 2}))
    assert calls == [1]  # only the plain batch went to oban's insert
    assert plain.id is not None and "unique_key" not in plain.meta
    assert second.id == first.id and second.extra["conflict"] is True
    found = await rows(pt, "SELECT count(*) AS n FROM oban_jobs")
    assert found == [{"n": 2}]


async def test_insert_observers_see_plain_and_unique_batches_before_the_insert(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    registry: None,
) -> None:
    install_hooks()
    seen: list[tuple[str, list[str], list[int]]] = []

    @contextmanager
    def observer(jobs: list[Any]) -> Iterator[Any]:
        for job in jobs:  # what it adds reaches the row, on both paths
            job.meta = {**job.meta, "observed": True}
        workers = [job.worker.rpartition(".")[2] for job in jobs]

        def inserted(result: list[Any]) -> None:
            seen.append(("inserted", workers, [job.id for job in result]))

        yield inserted

    oban_hooks.observe_inserts(observer)
    try:
        oban = Oban(pool=pool, node="hooks-o", queues={})

        @worker(queue="hooked", unique={"period": 60})
        class Watched:
            async def process(self, job: Any) -> None:
                return None

        plain = await oban.enqueue(Watched.new({"a": 1}, unique=None))
        unique = await oban.enqueue(Watched.new({"a": 2}))
    finally:
        oban_hooks.unobserve_inserts(observer)
    after = await oban.enqueue(Watched.new({"a": 3}, unique=None))
    assert seen == [
        ("inserted", ["Watched"], [plain.id]),
        ("inserted", ["Watched"], [unique.id]),
    ]
    stored = await rows(pt, "SELECT id, meta FROM oban_jobs ORDER BY id")
    assert [(r["id"], r["meta"].get("observed")) for r in stored] == [
        (plain.id, True),
        (unique.id, True),
        (after.id, None),
    ]


async def test_insert_jobs_inserts_chain_links_and_batches_with_their_rows(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    registry: None,
) -> None:
    from oban_powertools.batches import Batch

    calls: list[int] = []
    install_hooks()
    original = get_ext("query.insert_jobs", None).previous

    async def counting(query: Any, jobs: list[Any], conn: Any = None) -> Any:
        calls.append(len(jobs))
        return await original(query, jobs, conn)

    put_ext("query.insert_jobs", oban_hooks.wrap_insert_jobs(counting))
    oban = Oban(pool=pool, node="hooks-c", queues={})

    @worker(queue="hooked")
    class Step:
        async def process(self, job: Any) -> None:
            return None

    plain = await oban.enqueue(Step.new({}))
    first, second = await oban.enqueue_many(Step.new({}, chain="k"), Step.new({}, chain="k"))
    batch = await Batch(name="b", on_completed=Step).add(Step.new({}), Step.new({})).enqueue(oban)
    assert calls == [1]  # only the plain job went to oban's insert
    assert plain.id is not None and "chain" not in plain.meta
    assert (first.state, second.state) == ("available", "suspended")
    assert (first.meta["chain_seq"], second.meta["chain_seq"]) == (1, 2)
    links = await rows(pt, "SELECT seq, job_id FROM powertools_chain_links ORDER BY seq")
    assert links == [{"seq": 1, "job_id": first.id}, {"seq": 2, "job_id": second.id}]
    members = await rows(pt, "SELECT job_id FROM powertools_batch_jobs ORDER BY job_id")
    assert [m["job_id"] for m in members] == [j.id for j in batch]


# -- executor.wrap_result --------------------------------------------------------------------


async def test_wrap_result_discards_stale_args_at_once_and_passes_other_errors(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    registry: None,
) -> None:
    install_hooks()
    wrapped = get_ext("executor.wrap_result", None)
    seen: list[Any] = []
    original = wrapped.previous

    def counting(job: Any, result: Any) -> Any:
        seen.append(type(result).__name__)
        return original(job, result)

    put_ext("executor.wrap_result", oban_hooks.wrap_result(counting))

    @worker(queue="hooked")
    class Stale:
        async def process(self, job: Any) -> None:
            raise JobArgsInvalid("Args.x", "required, missing")

    @worker(queue="hooked")
    class Flaky:
        async def process(self, job: Any) -> None:
            raise RuntimeError("try again")

    oban = Oban(pool=pool, node="hooks-r", queues={"hooked": 2})
    await oban.start()
    try:
        stale = await oban.enqueue(Stale.new({}))
        flaky = await oban.enqueue(Flaky.new({}))

        async def both_failed() -> bool:
            found = await rows(pt, "SELECT id, state::text AS state FROM oban_jobs")
            return {r["id"]: r["state"] for r in found} == {
                stale.id: "discarded",
                flaky.id: "retryable",
            }

        await eventually(both_failed, within=10, what="stale discarded, flaky retryable")
    finally:
        await oban.stop()
    assert sorted(seen) == ["JobArgsInvalid", "RuntimeError"]  # oban called the hook
    found = await rows(pt, "SELECT attempt, max_attempts FROM oban_jobs ORDER BY id")
    assert found == [{"attempt": 1, "max_attempts": 20}, {"attempt": 1, "max_attempts": 20}]


# -- producer.validate -------------------------------------------------------------------------


async def test_producer_validate_refuses_a_bad_limiter_option_when_oban_is_built(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    runtime = Runtime(pt, declarations=[], import_oban_cron=False)
    options = runtime.oban_options()
    with pytest.raises(LimitOptionError) as raised:
        Oban(
            pool=pool,
            node="hooks-bad",
            queues={"fine": 2, "exports": {"limit": 2, "global_limit": 0}},
            **options,
        )
    assert raised.value.setting == "queues.exports.global_limit"
    with pytest.raises(LimitOptionError, match=r"^queues.exports.rate_limt: is not a queue"):
        Oban(pool=pool, node="hooks-bad", queues={"exports": {"limit": 2, "rate_limt": 1}})
    # Nothing started: no limits declared, no producer recorded, the runtime never opened.
    assert await rows(pt, "SELECT queue FROM powertools_queue_limits") == []
    assert await rows(pt, "SELECT uuid FROM oban_producers") == []
    assert runtime.limiter is None or runtime.limiter.limited == frozenset()
    # The validation is the hook's: oban's own validation still runs before it.
    assert getattr(get_ext("producer.validate", None), "previous", None) is not None
    with pytest.raises(ValueError, match="limit must be positive"):
        Oban(pool=pool, node="hooks-bad", queues={"exports": {"limit": 0, "global_limit": 2}})


# -- producer.get_jobs -------------------------------------------------------------------------


@worker(queue="hooks_limited")
class LimitedJob:
    async def process(self, job: Any) -> None:
        return None


@worker(queue="hooks_plain")
class PlainJob:
    async def process(self, job: Any) -> None:
        return None


async def test_producer_get_jobs_fetches_limited_queues_through_the_limiter_only(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    from oban import telemetry

    from oban_powertools.runtime.limiter import FETCHED, TELEMETRY_EVENT

    events: list[dict[str, Any]] = []
    telemetry.attach("hooks-limiter", [TELEMETRY_EVENT], lambda _name, meta: events.append(meta))
    runtime = Runtime(pt, declarations=[], import_oban_cron=False)
    oban = Oban(
        pool=pool,
        node="hooks-fetch",
        queues={
            "hooks_limited": {"limit": 3, "rate_limit": {"allowed": 1000, "period": 60}},
            "hooks_plain": 3,
        },
        **runtime.oban_options(),
    )
    await oban.start()
    try:
        await oban.enqueue_many(*[LimitedJob.new({"n": n}) for n in range(5)])
        await oban.enqueue_many(*[PlainJob.new({"n": n}) for n in range(5)])

        async def all_done() -> bool:
            done = await rows(pt, "SELECT count(*) AS n FROM oban_jobs WHERE state = 'completed'")
            return bool(done[0]["n"] == 10)

        await eventually(all_done, within=15, what="all 10 jobs completed")
    finally:
        await oban.stop()
        telemetry.detach("hooks-limiter")
    assert runtime.limiter is not None and runtime.limiter.wants("hooks_limited")
    assert not runtime.limiter.wants("hooks_plain")
    # The limited queue's fetches were the limiter's: its events, its starts recorded.
    assert {e["queue"] for e in events} == {"hooks_limited"}
    assert sum(e["claimed"] for e in events) == 5
    # Exactly the fields docs/telemetry.md lists for the event.
    assert all(set(e) == FETCHED.fields for e in events)
    assert all(e["limited_by"] == [] and e["rate_allowed"] is not None for e in events)
    starts = await rows(pt, "SELECT queue, partition_key, starts FROM powertools_limit_starts")
    assert {(r["queue"], r["partition_key"]) for r in starts} == {("hooks_limited", "")}
    assert sum(r["starts"] for r in starts) == 5


# -- query.ack_jobs --------------------------------------------------------------------------


async def test_ack_jobs_acks_composite_jobs_with_their_follow_ups_and_plain_ones_through_oban(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    registry: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from oban_powertools.runtime import acks as acks_module

    install_hooks()
    wrapped = get_ext("query.ack_jobs", None)
    original = wrapped.previous
    to_oban: list[list[int]] = []

    async def counting(query: Any, acks: list[Any]) -> Any:
        to_oban.append(sorted(a.id for a in acks))
        return await original(query, acks)

    followed: list[list[tuple[int, str]]] = []

    async def follow_up(tx: Any, acked: Any) -> None:
        followed.append(sorted((job.id, job.state) for job in acked))

    monkeypatch.setattr(
        acks_module,
        "COMPOSITES",
        (acks_module.Composite("workflow", "workflow_id", follow_up),),
    )
    put_ext("query.ack_jobs", oban_hooks.wrap_ack_jobs(counting))
    oban = Oban(pool=pool, node="hooks-a", queues={"acked": 2})

    @worker(queue="acked")
    class Quick:
        async def process(self, job: Any) -> None:
            return None

    plain = await oban.enqueue(Quick.new({"n": 1}))
    step = await oban.enqueue(Quick.new({"n": 2}, meta={"workflow_id": "w", "workflow_step": "a"}))
    await oban.start()
    try:

        async def both_completed() -> bool:
            found = await rows(pt, "SELECT id, state::text FROM oban_jobs ORDER BY id")
            return [r["state"] for r in found] == ["completed", "completed"]

        await eventually(both_completed)
    finally:
        await oban.stop()
    assert [plain.id] in to_oban  # the plain job's ack went to oban's own, untouched
    assert all(step.id not in ids for ids in to_oban)
    assert followed == [[(step.id, "completed")]]


# -- lifeline.rescue -------------------------------------------------------------------------

GHOST_JOB = (
    "INSERT INTO oban_jobs (worker, queue, args, state, attempt, attempted_at, attempted_by) "
    "VALUES ('app.Ghost', %(queue)s, '{}', 'executing', 1, "
    "timezone('UTC', now()) - make_interval(secs => %(age)s), %(attempted_by)s) RETURNING id"
)


async def _insert_executing(pt: Powertools, queue: str, age: float, attempted_by: list[str]) -> int:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            GHOST_JOB, {"queue": queue, "age": age, "attempted_by": attempted_by}
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row["id"])


async def _state_of(pt: Powertools, job_id: int) -> str:
    async with pt.db.connection() as conn:
        cur = await conn.execute(
            "SELECT state::text AS state FROM oban_jobs WHERE id = %(id)s", {"id": job_id}
        )
        row = await cur.fetchone()
    assert row is not None
    return str(row["state"])


async def test_lifeline_rescue_runs_the_accurate_lifeline_for_runtime_instances_only(
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
    db_url: str,
) -> None:
    from oban import telemetry

    from oban_powertools.runtime.lifeline import TELEMETRY_EVENT, lifeline_for

    pt = make_powertools(db_url, lifeline_grace_seconds=5)
    events: list[dict[str, Any]] = []
    telemetry.attach("hooks-lifeline", [TELEMETRY_EVENT], lambda _name, meta: events.append(meta))
    async with pt:
        runtime = Runtime(pt, declarations=[], import_oban_cron=False)
        oban = Oban(
            pool=pool,
            node="hooks-lifeline",
            queues={"hooks_lifeline": 1},
            lifeline={"interval": 0.2, "rescue_after": 1.0},
            **runtime.oban_options(),
        )
        assert oban_hooks.installed()
        assert lifeline_for(oban._query) is runtime.lifeline is not None
        await oban.start()
        try:
            await eventually(lambda: oban.is_leader, within=10, what="the instance leads")
            live_uuid = oban._producers["hooks_lifeline"]._uuid
            # Executing 10 minutes on this live producer (oban's rescue_after is 1 s), and
            # one of a producer that never heartbeated.
            live = await _insert_executing(pt, "hooks_lifeline", 600, ["hooks-lifeline", live_uuid])
            orphan = await _insert_executing(pt, "elsewhere", 1, ["gone", str(uuid4())])

            async def orphan_rescued() -> bool:
                return await _state_of(pt, orphan) == "available"

            await eventually(orphan_rescued, within=10, what="the orphan rescued by the hook")
            assert runtime.lifeline is not None and runtime.lifeline.last_pass is not None
            passes = len(events)
            await eventually(lambda: len(events) > passes + 2, within=10, what="more passes")
            assert await _state_of(pt, live) == "executing"  # never rescued: its node lives
        finally:
            await oban.stop()
            telemetry.detach("hooks-lifeline")
    rescuing = [e for e in events if e["rescued_count"]]
    assert len(rescuing) == 1 and rescuing[0]["orphaned_producers_count"] == 1
    assert rescuing[0]["orphaned_producers"][0]["node"] == "gone"
    assert rescuing[0]["audit_event_id"] is not None


async def test_without_a_runtime_lifeline_rescue_is_obans_age_based_rescue(
    pt: Powertools,
    pool: AsyncConnectionPool,  # type: ignore[type-arg]
) -> None:
    install_hooks()
    plain = Oban(pool=pool, node="plain-lifeline", queues={"plain_lifeline": 1})
    rescue = get_ext("lifeline.rescue", None)
    assert getattr(rescue, "previous", None) is not None
    old = await _insert_executing(pt, "plain_lifeline", 600, ["plain-lifeline", str(uuid4())])
    young = await _insert_executing(pt, "plain_lifeline", 1, ["plain-lifeline", str(uuid4())])
    await rescue(plain._query, 300.0)  # as oban's Lifeline calls it
    assert await _state_of(pt, old) == "available"  # older than rescue_after
    assert await _state_of(pt, young) == "executing"
