"""Code cron declarations (explicit and oban's @worker(cron=...)) and the slot planner."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import oban._scheduler as oban_scheduler
import pytest
from oban import job, worker

from oban_powertools.cron import declarations
from oban_powertools.cron.declarations import (
    code_entries,
    declare,
    declared,
    entry_name_for_worker,
    oban_declarations,
)
from oban_powertools.cron.entries import CronEntryError, CronEntrySpec
from oban_powertools.cron.expression import CronExpression
from oban_powertools.cron.slots import plan_slots
from oban_powertools.cron.timezones import load_timezone

T0 = datetime(2031, 1, 6, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def clean_registries() -> Iterator[None]:
    saved = list(oban_scheduler._scheduled_entries)
    oban_scheduler._scheduled_entries.clear()
    declarations.clear_declarations()
    yield
    declarations.clear_declarations()
    oban_scheduler._scheduled_entries[:] = saved


def spec(name: str = "nightly_sync", **kw: Any) -> CronEntrySpec:
    return CronEntrySpec(name=name, worker="app.jobs.NightlySync", expression="0 3 * * *", **kw)


@pytest.mark.parametrize(
    ("worker_name", "entry"),
    [
        ("app.jobs.NightlySync", "nightly_sync"),
        ("app.jobs.HTTPPoller", "http_poller"),
        ("app.jobs.send_digest", "send_digest"),
        ("tests.f.<locals>.Report2Csv", "report2_csv"),
        ("Standalone", "standalone"),
    ],
)
def test_entry_names_for_oban_declarations(worker_name: str, entry: str) -> None:
    assert entry_name_for_worker(worker_name) == entry


def test_declare_registers_once_and_refuses_conflicts() -> None:
    declare(spec())
    declare(spec())  # the same spec again (a module imported twice) is fine
    assert declared() == [spec()]
    with pytest.raises(CronEntryError, match="already declared with a different definition"):
        declare(spec(queue="other"))
    with pytest.raises(CronEntryError, match="declared entries are code entries"):
        declare(spec(name="dynamic", source="runtime"))
    with pytest.raises(TypeError):
        declare({"name": "x"})  # type: ignore[arg-type]


def test_obans_cron_declarations_become_code_entries() -> None:
    @worker(queue="reports", priority=3, max_attempts=5, tags=["Nightly"], cron="0 3 * * *")
    class NightlySync:
        async def process(self, job: Any) -> None:
            return None

    @job(queue="mail", cron={"expr": "@hourly", "timezone": "Europe/Berlin"})
    def send_digest() -> None:
        return None

    found = {s.name: s for s in oban_declarations(default_timezone="America/Chicago")}
    assert set(found) == {"nightly_sync", "send_digest"}
    nightly = found["nightly_sync"]
    assert nightly.worker.endswith(".NightlySync") and nightly.source == "code"
    assert (nightly.queue, nightly.priority, nightly.max_attempts) == ("reports", 3, 5)
    assert list(nightly.tags) == ["nightly"]
    assert nightly.timezone == "America/Chicago"  # oban's scheduler-wide default
    assert nightly.metadata["oban_cron_name"] == oban_scheduler.cron_hash(
        "0 3 * * *", nightly.worker, {}
    )
    digest = found["send_digest"]
    assert digest.expression == "@hourly" and digest.timezone == "Europe/Berlin"
    assert digest.queue == "mail" and dict(digest.args) == {}


def test_name_collisions_are_errors_naming_both_sides() -> None:
    def first() -> None:
        @worker(cron="@daily")
        class Report:
            pass

    def second() -> None:
        @worker(cron="@hourly")
        class Report:
            pass

    first()
    second()
    with pytest.raises(CronEntryError, match=r"'report' is declared twice.*second.<locals>.Report"):
        code_entries()

    oban_scheduler._scheduled_entries.pop()
    declare(CronEntrySpec(name="report", worker="app.Other", expression="@weekly"))
    with pytest.raises(CronEntryError, match=r"by declare\(\) and by @worker"):
        code_entries()
    assert [s.name for s in code_entries(include_oban=False)] == ["report"]


def test_an_oban_declaration_our_parser_refuses_names_the_way_out() -> None:
    @worker(cron="*/90 * * * *")  # oban takes a step beyond the field; we do not
    class Sweeper:
        pass

    with pytest.raises(CronEntryError, match=r"cannot take over.*Sweeper.*declare\(\)"):
        code_entries()


def test_a_cron_function_that_needs_arguments_cannot_be_taken_over() -> None:
    @job(cron="@daily")
    def needs(account: int) -> None:
        return None

    with pytest.raises(CronEntryError, match=r"without arguments fails.*CronEntrySpec\(args="):
        code_entries()


# -- the slot planner ------------------------------------------------------------------------


def plan(
    expression: str = "* * * * *",
    *,
    through: datetime | None,
    now: datetime,
    live_from: datetime | None = None,
    updated_at: datetime | None = None,
    policy: str = "all",
    max_catch_up: int = 10,
) -> list[tuple[datetime, str, bool]] | None:
    result = plan_slots(
        CronExpression.parse(expression),
        load_timezone("Etc/UTC"),
        evaluated_through=through,
        updated_at=updated_at,
        now_minute=now,
        live_from=live_from or now,
        catch_up_policy=policy,
        max_catch_up=max_catch_up,
    )
    return None if result is None else result.slots


def test_plan_only_the_current_minute_is_scheduled_by_default() -> None:
    assert plan(through=T0, now=T0 + 3 * MINUTE) == [
        (T0 + MINUTE, "catch_up", False),
        (T0 + 2 * MINUTE, "catch_up", False),
        (T0 + 3 * MINUTE, "scheduled", False),
    ]
    assert plan(through=T0 + 3 * MINUTE, now=T0 + 3 * MINUTE) is None
    assert plan(through=None, now=T0) == [(T0, "scheduled", False)]
    assert plan("0 * * * *", through=None, now=T0 + MINUTE) == []


def test_plan_live_window_fires_late_minutes_but_not_before_the_entry_changed() -> None:
    late = plan(through=T0, now=T0 + 3 * MINUTE, live_from=T0 + MINUTE)
    assert late == [
        (T0 + MINUTE, "scheduled", True),
        (T0 + 2 * MINUTE, "scheduled", True),
        (T0 + 3 * MINUTE, "scheduled", False),
    ]
    # Resumed at T0+1:30: T0+1 was a paused minute, so it is catch-up, not late.
    resumed = plan(
        through=T0,
        now=T0 + 3 * MINUTE,
        live_from=T0 + MINUTE,
        updated_at=T0 + MINUTE + timedelta(seconds=30),
        policy="latest",
    )
    assert resumed == [
        (T0 + MINUTE, "catch_up", False),
        (T0 + 2 * MINUTE, "scheduled", True),
        (T0 + 3 * MINUTE, "scheduled", False),
    ]
