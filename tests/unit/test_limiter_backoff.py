"""When the limited fetch asks again after a limit held it back."""

from __future__ import annotations

from typing import Any

from oban_powertools.runtime.limiter import GLOBAL_RETRY, WALK_RETRY, FetchDecision, Limiter


def decision(claimed: int, retry_in: float | None) -> FetchDecision:
    return FetchDecision("q", 5, claimed, ("global_limit",), 0, 1, 0, None, 0, retry_in)


def limiter() -> Limiter:
    database: Any = None  # _backoff reads nothing
    return Limiter(database, lambda: {}, node="n")


def test_fruitless_walks_back_off_up_to_the_global_wait() -> None:
    lim = limiter()
    delays = [lim._backoff(decision(0, WALK_RETRY)) for _ in range(6)]
    assert delays[:4] == [WALK_RETRY, 2 * WALK_RETRY, 4 * WALK_RETRY, 8 * WALK_RETRY]
    assert delays[-1] == GLOBAL_RETRY and max(delays) == GLOBAL_RETRY


def test_a_claim_resets_the_backoff() -> None:
    lim = limiter()
    for _ in range(4):
        lim._backoff(decision(0, WALK_RETRY))
    assert lim._backoff(decision(2, WALK_RETRY)) == WALK_RETRY
    assert lim._backoff(decision(0, WALK_RETRY)) == WALK_RETRY


def test_a_rate_window_wait_is_kept_exactly() -> None:
    lim = limiter()
    assert [lim._backoff(decision(0, 0.6)) for _ in range(3)] == [0.6, 0.6, 0.6]
