"""One error base, stable codes, all exported from the package root."""

from __future__ import annotations

import inspect

import pytest

import oban_powertools
from oban_powertools import (
    CronEntryError,
    CronExpressionError,
    InvalidArgument,
    PowertoolsError,
    QueryFileError,
)
from oban_powertools.cron.entries import CronEntrySpec
from oban_powertools.cron.expression import CronExpression
from oban_powertools.cron.timezones import load_timezone
from oban_powertools.db.queries import sql
from oban_powertools.runtime.applier import QueueStateApplier
from tests.support.modules import import_all


def _library_errors() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in import_all():
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, PowertoolsError)
                and obj.__module__.startswith("oban_powertools")
                and not obj.__name__.startswith("_")
            ):
                found.add(obj)
    return found


def test_every_library_error_is_exported_from_the_root_with_its_own_code() -> None:
    errors = _library_errors()
    assert len(errors) > 20  # the action family, config, cron, queries ...
    exported = {getattr(oban_powertools, name) for name in oban_powertools.__all__}
    assert errors - exported == set()
    codes = [e.code for e in errors]
    assert len(set(codes)) == len(codes), "two errors share a code"
    assert all(c.islower() and " " not in c for c in codes)


@pytest.mark.parametrize(
    ("call", "error", "code"),
    [
        (
            lambda: CronExpression.parse("61 * * * *"),
            CronExpressionError,
            "cron_expression_invalid",
        ),
        (lambda: load_timezone("Mars/Olympus"), InvalidArgument, "cron_timezone_invalid"),
        (
            lambda: CronEntrySpec(name="x", worker="w", expression="* * * * *", max_catch_up=0),
            CronEntryError,
            "cron_entry_invalid",
        ),
        (lambda: sql("oban_jobs", "no_such_query"), QueryFileError, "query_file_invalid"),
        (
            lambda: QueueStateApplier(None, {}, interval=0),  # type: ignore[arg-type]
            InvalidArgument,
            "invalid_argument",
        ),
    ],
)
def test_bad_input_raises_a_powertools_error_with_its_code(
    call: object, error: type[PowertoolsError], code: str
) -> None:
    with pytest.raises(error) as raised:
        call()  # type: ignore[operator]
    assert isinstance(raised.value, PowertoolsError) and raised.value.code == code
    # Existing callers that catch ValueError for bad values keep working.
    if isinstance(raised.value, InvalidArgument):
        assert isinstance(raised.value, ValueError)
