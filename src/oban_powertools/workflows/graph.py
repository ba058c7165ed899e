"""The dependency graph of one workflow level: order and cycles (pure, no jobs)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

__all__ = ["find_cycle", "topological_order"]


def find_cycle(deps: Mapping[str, Sequence[str]]) -> tuple[str, ...] | None:
    """A cycle among ``deps`` (step -> the steps it depends on), as the steps along it
    with the first repeated at the end, or None. Names outside ``deps`` are ignored
    (steps of the workflow already in the database cannot depend on new ones).
    Deterministic: the first cycle found walking steps and deps in the given order."""
    done: set[str] = set()
    for start in deps:
        if start in done:
            continue
        # Iterative depth-first walk; ``path`` is the current chain of steps, ``on_path``
        # its set, so a dependency on a step of the chain closes a cycle.
        path: list[str] = [start]
        on_path = {start}
        iterators = [iter(deps[start])]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                iterators.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if nxt not in deps or nxt in done:
                continue
            if nxt in on_path:
                # The walk goes from a step to its dependency, so the chain reads
                # "depends on"; reversed, it reads in the order the steps would run.
                cycle = path[path.index(nxt) :] + [nxt]
                return tuple(reversed(cycle))
            path.append(nxt)
            on_path.add(nxt)
            iterators.append(iter(deps[nxt]))
    return None


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """The steps so that each comes after the steps it depends on (for an acyclic
    ``deps``; dependencies outside it are ignored), stable in the given order."""
    remaining = {step: sum(1 for d in ds if d in deps) for step, ds in deps.items()}
    dependents: dict[str, list[str]] = {step: [] for step in deps}
    for step, ds in deps.items():
        for d in ds:
            if d in deps:
                dependents[d].append(step)
    ready = deque(step for step, n in remaining.items() if n == 0)
    order: list[str] = []
    while ready:
        step = ready.popleft()
        order.append(step)
        for dependent in dependents[step]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
    return order
