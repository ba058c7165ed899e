"""Sharing a fetch's demand between partitions, round-robin.

The fetch walks the partitions that have available jobs in key order, starting after the
one it served last (the *turn*), and hands out one job per partition per round until the
demand is met or no partition can take more. A partition with 100,000 available jobs
gets no more turns than one with 10: each waits at most one round of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Candidate", "last_served", "share"]


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    capacity: int  # how many jobs this partition may start now (available and allowed)


def share(candidates: Sequence[Candidate], demand: int) -> dict[str, int]:
    """How many jobs to claim from each partition, in round-robin order; the candidates
    come in turn order. Partitions given nothing are left out."""
    taken: dict[str, int] = {}
    left = max(0, demand)
    open_ = [c for c in candidates if c.capacity > 0]
    while left > 0 and open_:
        still = []
        for c in open_:
            if left == 0:
                break
            n = taken.get(c.key, 0) + 1
            taken[c.key] = n
            left -= 1
            if n < c.capacity:
                still.append(c)
        else:
            open_ = still
            continue
        break
    return taken


def last_served(candidates: Sequence[Candidate], taken: dict[str, int]) -> str | None:
    """The partition the next fetch starts after: the last one in turn order given a job
    in the final round (so the next fetch begins with the next partition)."""
    if not taken:
        return None
    top = max(taken.values())
    last = None
    for c in candidates:
        if taken.get(c.key, 0) == top:
            last = c.key
    return last
