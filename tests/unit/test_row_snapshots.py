"""RowSnapshots: a bulk action's per-target snapshots, read from rows only when asked."""

from __future__ import annotations

import pytest

from oban_powertools.actions.base import RowSnapshots

ROWS = [(7, "discarded", 3, "available"), (9, "retryable", 1, "available")]


def test_reads_like_a_mapping_of_target_ids() -> None:
    after = RowSnapshots(ROWS, {"id": 0, "state": 3})
    assert list(after) == ["7", "9"] and len(after) == 2
    assert after["9"] == {"id": 9, "state": "available"}
    assert dict(after.items()) == {
        "7": {"id": 7, "state": "available"},
        "9": {"id": 9, "state": "available"},
    }
    assert "7" in after and "8" not in after and 7 not in after
    assert after.get("8") is None
    with pytest.raises(KeyError):
        after["8"]


def test_counts_by_a_column_without_building_snapshots() -> None:
    before = RowSnapshots(ROWS, {"state": 1, "attempt": 2})
    assert before.count_by("state") == {"discarded": 1, "retryable": 1}
    assert RowSnapshots(ROWS, {"state": 3}).count_by("state") == {"available": 2}
