"""Typed workers without a database: args checked against dataclasses (and pydantic models
when pydantic is importable), the meta a typed insert carries, bounded records, and the
display policy masking a job's meta.redact paths."""

from __future__ import annotations

import base64
import enum
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import erlpack
import pytest
from oban.job import Record
from oban.worker import resolve_worker

import oban_powertools
from oban_powertools import ArgsValidationError, InvalidArgument, Sensitive, typed_worker
from oban_powertools.display import Display, job_redactions
from oban_powertools.workers import decode_recorded, schema_for
from oban_powertools.workers.recorded import record


class Format(enum.Enum):
    CSV = "csv"
    JSON = "json"


@dataclass
class Card:
    number: Annotated[str, Sensitive()]
    holder: str = "?"


@dataclass
class ExportArgs:
    customer_id: int
    ratio: float = 1.0
    label: str | None = None
    dry_run: bool = False
    kind: Literal["full", "delta"] = "full"
    fmt: Format = Format.CSV
    tags: list[str] = field(default_factory=list)
    window: tuple[int, ...] = ()
    pair: tuple[str, int] = ("a", 1)
    limits: dict[str, int] = field(default_factory=dict)
    card: Card | None = None
    cards: list[Card] = field(default_factory=list)
    since: datetime | None = None
    day: date | None = None
    extra: Any = None
    token: str = field(default="", metadata={"sensitive": True})


SCHEMA = schema_for(ExportArgs)


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(ArgsValidationError) as caught:
        SCHEMA.coerce(data)
    return str(caught.value)


def test_every_supported_type_round_trips_through_json() -> None:
    loaded = SCHEMA.coerce(
        {
            "customer_id": 7,
            "ratio": 2,
            "label": "q1",
            "dry_run": True,
            "kind": "delta",
            "fmt": "json",
            "tags": ["a"],
            "window": [1, 2, 3],
            "pair": ["b", 2],
            "limits": {"rows": 10},
            "card": {"number": "4242"},
            "cards": [{"number": "1111", "holder": "x"}],
            "since": "2025-01-02T03:04:05+00:00",
            "day": "2025-01-02",
            "extra": {"anything": [1, None]},
            "token": "tok-1",
        }
    )
    args = loaded.value
    assert isinstance(args, ExportArgs)
    assert args.ratio == 2.0 and isinstance(args.ratio, float)
    assert args.fmt is Format.JSON and args.window == (1, 2, 3) and args.pair == ("b", 2)
    assert args.card == Card("4242") and args.cards == [Card("1111", "x")]
    assert args.since == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert args.day == date(2025, 1, 2)
    assert loaded.data["fmt"] == "json" and loaded.data["since"] == "2025-01-02T03:04:05+00:00"
    assert loaded.data["card"] == {"number": "4242", "holder": "?"}  # defaults honoured
    assert loaded.redact == ["card.number", "cards[0].number", "token"]
    # An instance gives the same JSON as its mapping.
    assert SCHEMA.coerce(args).data == loaded.data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"customer_id": "x"}, "ExportArgs.customer_id: expected int, got str 'x'"),
        ({"customer_id": True}, "ExportArgs.customer_id: expected int, got bool True"),
        ({"customer_id": 1, "ratio": "1"}, "ExportArgs.ratio: expected float, got str '1'"),
        ({"customer_id": 1, "dry_run": 1}, "ExportArgs.dry_run: expected bool, got int 1"),
        ({"customer_id": 1, "label": 3}, "ExportArgs.label: expected str | None, got int 3"),
        ({"customer_id": 1, "kind": "x"}, "ExportArgs.kind: expected one of 'full', 'delta'"),
        ({"customer_id": 1, "fmt": "xml"}, "ExportArgs.fmt: expected Format (one of 'csv'"),
        ({"customer_id": 1, "tags": ["a", 2]}, "ExportArgs.tags[1]: expected str, got int 2"),
        ({"customer_id": 1, "window": [1, "2"]}, "ExportArgs.window[1]: expected int"),
        ({"customer_id": 1, "pair": ["a"]}, "ExportArgs.pair: expected tuple[str, int] (2 items)"),
        ({"customer_id": 1, "limits": {"r": "1"}}, "ExportArgs.limits.r: expected int"),
        ({"customer_id": 1, "card": {}}, "ExportArgs.card.number: required, missing"),
        ({"customer_id": 1, "card": {"number": "1", "pin": 1}}, "ExportArgs.card.pin: not a field"),
        ({"customer_id": 1, "since": "yesterday"}, "ExportArgs.since: expected datetime"),
        ({"customer_id": 1, "day": "2025-13-01"}, "ExportArgs.day: expected date"),
        ({"customer_id": 1, "nope": 1}, "ExportArgs.nope: not a field of ExportArgs"),
        ({}, "ExportArgs.customer_id: required, missing"),
    ],
)
def test_a_wrong_value_is_named_with_its_field_path(data: dict[str, Any], message: str) -> None:
    assert problem(data).startswith(message)


def test_a_sensitive_value_is_never_quoted_in_an_error() -> None:
    text = problem({"customer_id": 1, "card": {"number": 4242424242}})
    assert text == "ExportArgs.card.number: expected str, got int (a sensitive value, not shown)"
    assert "4242424242" not in problem({"customer_id": 1, "token": 4242424242})


def test_an_unsupported_annotation_is_refused_at_declaration() -> None:
    @dataclass
    class Odd:
        when: set[int]

    with pytest.raises(InvalidArgument, match=r"Odd.when: .* is not a supported args type"):
        schema_for(Odd)
    with pytest.raises(InvalidArgument, match="dataclass or a pydantic model"):
        schema_for(dict)


@typed_worker(queue="exports", args=ExportArgs, deadline=timedelta(minutes=10), priority=2)
class Export:
    async def perform(self, args: ExportArgs, job: Any) -> None:
        return None


def test_new_checks_args_and_adds_deadline_and_redaction_meta() -> None:
    before = datetime.now(UTC)
    job = Export.new(ExportArgs(customer_id=3, card=Card("4242")), meta={"trace": "t"})
    assert job.queue == "exports" and job.priority == 2
    assert job.args["customer_id"] == 3 and job.args["card"]["number"] == "4242"
    assert job.meta["trace"] == "t" and job.meta["redact"] == ["card.number", "token"]
    due = datetime.fromisoformat(job.meta["deadline_at"])
    assert due.tzinfo is not None
    assert before + timedelta(minutes=10) <= due <= datetime.now(UTC) + timedelta(minutes=10)
    absolute = datetime(2030, 1, 1, tzinfo=UTC)
    assert Export.new({"customer_id": 1}, deadline=absolute).meta["deadline_at"] == (
        "2030-01-01T00:00:00+00:00"
    )
    with pytest.raises(InvalidArgument, match="aware datetime"):
        Export.new({"customer_id": 1}, deadline=datetime(2030, 1, 1))
    with pytest.raises(ArgsValidationError, match="ExportArgs.customer_id: expected int"):
        Export.new({"customer_id": "x"})
    # Still an ordinary oban worker, resolved by name.
    assert resolve_worker(job.worker) is Export


def test_a_typed_worker_defines_perform_not_process() -> None:
    with pytest.raises(InvalidArgument, match="not process"):

        @typed_worker(args=ExportArgs)
        class Both:
            async def process(self, job: Any) -> None: ...

            async def perform(self, args: Any, job: Any) -> None: ...

    with pytest.raises(InvalidArgument, match="positive timedelta"):
        typed_worker(args=ExportArgs, deadline=timedelta(0))


def test_records_are_bounded_and_decode_back() -> None:
    small = record({"rows": 3, "file": "a.csv", "when": datetime(2025, 1, 1, tzinfo=UTC)})
    assert isinstance(small, Record)
    assert decode_recorded(small.encoded) == {
        "rows": 3,
        "file": "a.csv",
        "when": "2025-01-01T00:00:00+00:00",
    }
    big = record("x" * 10_000, limit=1000)
    note = decode_recorded(big.encoded)
    assert note["truncated"] is True and note["limit"] == 1000 and note["size"] > 1000
    odd = decode_recorded(record(object()).encoded)
    assert odd == {"unrecordable": True, "type": "object"}
    # The encoding is oban's (and Oban Pro's): Erlang term format, base64 without padding.
    assert erlpack.unpack(base64.b64decode(small.encoded + "=" * (-len(small.encoded) % 4)))
    with pytest.raises(ValueError):
        decode_recorded("not*base64")


def test_the_display_masks_meta_redact_paths_whatever_the_policy_says() -> None:
    class ShowsEverything:
        asked: list[Any] = []

        def display(self, kind: str, value: Any, context: Any) -> str | None:
            self.asked.append(value)
            return None

    policy = ShowsEverything()
    meta = {"redact": ["card.number", "cards[1].number", 5]}
    args = {"card": {"number": "4242-secret"}, "cards": [{"number": "a"}, {"number": "b-secret"}]}
    shown = Display(policy).tree("args", args, redact=job_redactions(meta))
    assert shown.value == {
        "card": {"number": "[redacted]"},
        "cards": [{"number": "a"}, {"number": "[redacted]"}],
    }
    assert shown.secrets == {"4242-secret": "[redacted]", "b-secret": "[redacted]"}
    assert "4242-secret" not in policy.asked  # the policy never even sees the value
    assert job_redactions({"redact": "card"}) == frozenset() and job_redactions(None) == frozenset()


# -- pydantic (an optional extra; these run whenever it is importable, as in make test) ---


def test_pydantic_models_are_checked_strictly_with_sensitive_fields() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Address(pydantic.BaseModel):
        street: Annotated[str, Sensitive()]

    class Signup(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        user_id: int
        since: datetime
        address: Address
        homes: list[Address] = []

    @typed_worker(queue="signups", args=Signup)
    class Welcome:
        async def perform(self, args: Signup, job: Any) -> None:
            return None

    job = Welcome.new(
        {"user_id": 5, "since": "2025-01-01T00:00:00Z", "address": {"street": "Main"}}
    )
    assert job.args["user_id"] == 5 and job.meta["redact"] == ["address.street"]
    model = Signup(
        user_id=1, since=datetime(2025, 1, 1, tzinfo=UTC), address=Address(street="x"),
        homes=[Address(street="y")],
    )  # fmt: skip
    assert Welcome.new(model).meta["redact"] == ["address.street", "homes[0].street"]
    with pytest.raises(ArgsValidationError) as caught:
        Welcome.new({"user_id": "5", "since": "2025-01-01T00:00:00Z", "address": {"street": "M"}})
    assert str(caught.value).startswith("Signup.user_id: Input should be a valid integer")
    assert "got str '5'" in str(caught.value)
    with pytest.raises(ArgsValidationError) as caught:
        Welcome.new({"user_id": 5, "since": "2025-01-01T00:00:00Z", "address": {"street": 12345}})
    assert caught.value.path == "Signup.address.street" and "12345" not in str(caught.value)
    with pytest.raises(ArgsValidationError, match="Signup.since: required, missing"):
        Welcome.new({"user_id": 5, "address": {"street": "M"}})
    with pytest.raises(ArgsValidationError, match=r"Signup.extra_key: Extra inputs"):
        Welcome.new(
            {"user_id": 5, "since": "2025-01-01T00:00:00Z", "address": {"street": "M"},
             "extra_key": 1}
        )  # fmt: skip


@pytest.fixture
def without_pydantic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "pydantic", None)  # type: ignore[arg-type]
    yield


def test_dataclass_workers_need_no_pydantic(without_pydantic: None) -> None:
    @dataclass
    class Ping:
        n: int

    @typed_worker(args=Ping)
    class Pinger:
        def perform(self, args: Ping, job: Any) -> None:
            return None

    assert Pinger.new({"n": 1}).args == {"n": 1}
    with pytest.raises(InvalidArgument, match="dataclass or a pydantic model"):
        schema_for(int)
    assert "typed_worker" in oban_powertools.__all__


def test_the_example_hosts_report_worker_is_typed() -> None:
    from examples.fastapi_host.workers import GenerateReport

    job = GenerateReport.new({"report": "daily", "customer_id": 7, "api_key": "sk-live-1"})
    assert job.queue == "exports" and job.meta["redact"] == ["api_key"]
    assert "deadline_at" in job.meta
    with pytest.raises(ArgsValidationError, match="ReportArgs.customer_id: expected int"):
        GenerateReport.new({"report": "daily", "customer_id": "7"})


def test_free_text_without_a_job_masks_fields_typed_workers_declared_sensitive() -> None:
    # A bridged Oban Web page shows args with no meta.redact at hand: the field names the
    # typed workers of this process declared sensitive are masked in its key: value pairs.
    from oban_powertools.display import sensitive_keys

    assert {"number", "token", "api_key"} <= sensitive_keys()
    page = (
        "<pre>%{&quot;number&quot; =&gt; &quot;4242-4242&quot;, "
        "&quot;holder&quot; =&gt; &quot;Ana&quot;}</pre>"
    )
    shown = Display(RedactingNothing(), "bridge").scrub_pairs("bridge", page, html_escaped=True)
    assert "4242-4242" not in shown
    assert "&quot;number&quot; =&gt; &quot;[redacted]&quot;" in shown
    assert "&quot;holder&quot; =&gt; &quot;Ana&quot;" in shown


class RedactingNothing:
    def display(self, kind: str, value: Any, context: Any) -> str | None:
        return None
