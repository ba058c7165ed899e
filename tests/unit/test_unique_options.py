"""The ``unique`` option and the key it yields."""

from __future__ import annotations

import pytest

from oban_powertools import UniqueOptionError
from oban_powertools.unique.keys import unique_key
from oban_powertools.unique.options import STATE_GROUPS, UniqueSpec, parse_unique


def test_defaults_follow_oban_pro() -> None:
    spec = parse_unique({})
    assert spec == UniqueSpec()
    assert spec is not None
    assert spec.fields == ("worker", "queue", "args") and spec.period == 60
    assert spec.states == STATE_GROUPS["successful"]
    assert parse_unique(True) == UniqueSpec()
    assert parse_unique(None) is None and parse_unique(False) is None


def test_groups_lists_infinity_and_replace() -> None:
    spec = parse_unique(
        {"states": ["scheduled", "available"], "period": "infinity", "replace": ["scheduled_at"]}
    )
    assert spec is not None
    assert spec.states == ("available", "scheduled")  # canonical order
    assert spec.period is None
    assert spec.replace is not None and spec.replace["scheduled"] == ("scheduled_at",)
    assert "executing" not in spec.replace  # a running job is never rewritten
    per_state = parse_unique({"replace": {"scheduled": ["args", "priority"]}})
    assert per_state is not None and per_state.replace == {"scheduled": ("args", "priority")}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", r"unique: must be a mapping"),
        ({"perid": 5}, r"unique\.perid: not a unique option"),
        ({"period": 0}, r"unique\.period: must be at least 1 second"),
        ({"period": 1.5}, r"unique\.period: must be a whole number"),
        ({"period": True}, r"unique\.period: must be a whole number"),
        ({"states": "done"}, r"unique\.states: 'done' is not a state group"),
        ({"states": ["running"]}, r"unique\.states: 'running' is not one of"),
        ({"states": []}, r"unique\.states: name at least one state"),
        ({"fields": ["payload"]}, r"unique\.fields: 'payload' is not one of"),
        ({"fields": []}, r"unique\.fields: name at least one of"),
        ({"fields": ["worker"], "keys": ["id"]}, r"unique\.keys: only args and meta have keys"),
        ({"keys": "account_id"}, r"unique\.keys: must be a list of strings"),
        ({"keys": [1]}, r"unique\.keys: must hold non-empty strings"),
        ({"keys": ["a", "a"]}, r"unique\.keys: names something twice"),
        ({"replace": ["state"]}, r"unique\.replace: 'state' is not one of"),
        ({"replace": {"running": ["args"]}}, r"unique\.replace: 'running' is not a job state"),
    ],
)
def test_bad_options_name_the_option(value: object, message: str) -> None:
    with pytest.raises(UniqueOptionError, match=message):
        parse_unique(value)


def key(spec: UniqueSpec, **job: object) -> str:
    base: dict[str, object] = {"worker": "app.W", "queue": "q", "args": {}, "meta": {}}
    return unique_key(spec, **{**base, **job})  # type: ignore[arg-type]


def test_the_key_covers_exactly_the_chosen_fields_and_keys() -> None:
    spec = parse_unique({"keys": ["account_id"]})
    assert spec is not None
    a = key(spec, args={"account_id": 1, "note": "x"})
    assert a == key(spec, args={"note": "y", "account_id": 1})  # other keys do not count
    assert a != key(spec, args={"account_id": 2})
    assert a != key(spec, args={"account_id": 1}, queue="other")  # queue is a field
    assert a != key(spec, args={"account_id": 1}, worker="app.V")
    by_args = parse_unique({"fields": ["args"]})
    assert by_args is not None
    assert key(by_args, args={"a": 1}, worker="app.V") == key(by_args, args={"a": 1})
    # Powertools' own meta never enters a key
    by_meta = parse_unique({"fields": ["meta"]})
    assert by_meta is not None
    assert key(by_meta, meta={"t": 1, "partition_key": "[1]"}) == key(by_meta, meta={"t": 1})


def test_the_key_is_stable_across_processes() -> None:
    spec = parse_unique({"keys": ["account_id"]})
    assert spec is not None
    # Fixed expected value: a change here changes every stored key (a migration).
    assert key(spec, args={"account_id": 1}) == "198238c24280b66bc6b50c27219197b8"
