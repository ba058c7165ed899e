"""A workflow's graph as an inline SVG: a layered layout computed here, drawn by a macro.

No JavaScript and no graph library. The layout is the classic layered one (Sugiyama):
each step goes in the column after its deepest dependency (longest-path layering),
an edge spanning several columns gets a bend point in each column it crosses (so it
runs between boxes, not through them), then the order within each column is improved by
a few sweeps of the barycentre heuristic (each node moves towards the mean position of
its neighbours in the column before, then after), which removes most crossings. It is
deterministic: the same steps and edges give the same picture, whatever order they came
in. Boxes are placed on a grid of fixed pitches, so no two can overlap.

Each node is coloured by its state *and* labelled with it (colour is never the only
signal); the drawing is ``role="img"`` with a title and a description, and the page lists
the same steps in a table with their dependencies, states and links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["DagDrawing", "DagEdge", "DagNode", "NodeSpec", "layers_of", "layout"]

NODE_WIDTH = 150
NODE_HEIGHT = 40
COLUMN_GAP = 56  # room for the edges between two columns
ROW_GAP = 18
MARGIN = 8
LABEL_CHARS = 20  # longer names are cut with "…" in the box (whole in its tooltip)
SWEEPS = 4
# Bend points are worth it up to here; beyond, long edges are drawn as plain curves.
MAX_BENDS = 4000


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One step to draw: ``key`` identifies it in the edges, the rest is already shown."""

    key: str
    label: str
    state: str  # the state class: its colour comes from the stylesheet
    state_label: str  # the state in words, drawn under the name
    href: str | None = None
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class DagNode:
    id: str  # "n<index>": never the step's name, which is host data
    x: float
    y: float
    width: float
    height: float
    label: str  # cut to fit the box
    state: str
    state_label: str
    href: str | None
    tooltip: str
    layer: int


@dataclass(frozen=True, slots=True)
class DagEdge:
    path: str  # the SVG path data
    css: str


@dataclass(frozen=True, slots=True)
class DagDrawing:
    id: str
    title: str
    desc: str
    width: int
    height: int
    nodes: list[DagNode]
    edges: list[DagEdge]
    legend: list[tuple[str, str]]  # (state class, words) of the states in use


def layers_of(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layering: a step with no dependency is in layer 0, any other one
    layer after its deepest dependency. Edges naming unknown steps are ignored; a cycle
    (which the workflow builder refuses) cannot hang it: its steps stay where the walk
    left them."""
    known = set(keys)
    deps: dict[str, list[str]] = {k: [] for k in keys}
    dependents: dict[str, list[str]] = {k: [] for k in keys}
    for up, down in edges:
        if up in known and down in known and up != down:
            deps[down].append(up)
            dependents[up].append(down)
    remaining = {k: len(set(deps[k])) for k in keys}
    layer = dict.fromkeys(keys, 0)
    ready = [k for k in keys if remaining[k] == 0]
    seen: set[tuple[str, str]] = set()
    while ready:
        key = ready.pop()
        for down in dependents[key]:
            if (key, down) in seen:
                continue
            seen.add((key, down))
            layer[down] = max(layer[down], layer[key] + 1)
            remaining[down] -= 1
            if remaining[down] == 0:
                ready.append(down)
    return layer


def _order(
    columns: list[list[str]], ups: dict[str, list[str]], downs: dict[str, list[str]]
) -> list[list[str]]:
    """Barycentre sweeps: down the columns by the neighbours before, then back up by the
    neighbours after, a few times. Ties keep the current order (a stable sort), so the
    result depends only on the starting order, itself sorted by key."""
    position: dict[str, float] = {}

    def place(column: list[str]) -> None:
        for i, key in enumerate(column):
            position[key] = float(i)

    for column in columns:
        place(column)
    for _ in range(SWEEPS):
        for index in range(1, len(columns)):
            columns[index] = _by_barycentre(columns[index], ups, position)
            place(columns[index])
        for index in range(len(columns) - 2, -1, -1):
            columns[index] = _by_barycentre(columns[index], downs, position)
            place(columns[index])
    return columns


def _by_barycentre(
    column: list[str], neighbours: dict[str, list[str]], position: dict[str, float]
) -> list[str]:
    def weight(item: tuple[int, str]) -> float:
        i, key = item
        near = [position[n] for n in neighbours.get(key, ()) if n in position]
        return sum(near) / len(near) if near else float(i)

    return [key for _, key in sorted(enumerate(column), key=weight)]


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def layout(
    specs: Sequence[NodeSpec],
    edges: Iterable[tuple[str, str]],
    *,
    id: str = "dag",
    title: str = "Workflow graph",
    states: dict[str, str] | None = None,
) -> DagDrawing:
    """Lay ``specs`` out left to right by their dependencies (``edges``: (upstream,
    downstream) keys). ``states`` maps a state class to its words, for the legend."""
    by_key = {s.key: s for s in specs}
    keys = sorted(by_key)
    pairs = sorted({(u, d) for u, d in edges if u in by_key and d in by_key and u != d})
    layer = layers_of(keys, pairs)

    # Bend points ("virtual" nodes) for edges that skip columns: each real edge becomes a
    # chain through one virtual node per column crossed, so ordering sees it.
    spans = sum(max(0, layer[d] - layer[u] - 1) for u, d in pairs)
    bend = spans <= MAX_BENDS
    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    chains: list[list[str]] = []
    node_layer = dict(layer)
    for number, (u, d) in enumerate(pairs):
        chain = [u]
        if bend:
            for step in range(layer[u] + 1, layer[d]):
                virtual = f"\x00{number}:{step}"
                node_layer[virtual] = step
                chain.append(virtual)
        chain.append(d)
        for a, b in zip(chain, chain[1:], strict=False):
            downs.setdefault(a, []).append(b)
            ups.setdefault(b, []).append(a)
        chains.append(chain)

    depth = max(node_layer.values(), default=-1) + 1
    columns: list[list[str]] = [[] for _ in range(depth)]
    for key in sorted(node_layer):
        columns[node_layer[key]].append(key)
    columns = _order(columns, ups, downs)

    tallest = max((len(c) for c in columns), default=0)
    pitch_x = NODE_WIDTH + COLUMN_GAP
    pitch_y = NODE_HEIGHT + ROW_GAP
    centre: dict[str, tuple[float, float]] = {}
    for index, column in enumerate(columns):
        # Each column centred on the tallest, on whole rows (the grid keeps boxes apart).
        offset = (tallest - len(column)) // 2
        for row, key in enumerate(column):
            x = MARGIN + index * pitch_x
            y = MARGIN + (row + offset) * pitch_y
            centre[key] = (x + NODE_WIDTH / 2, y + NODE_HEIGHT / 2)

    nodes = []
    for number, key in enumerate(keys):
        spec = by_key[key]
        cx, cy = centre[key]
        nodes.append(
            DagNode(
                id=f"{id}-n{number}",
                x=cx - NODE_WIDTH / 2,
                y=cy - NODE_HEIGHT / 2,
                width=NODE_WIDTH,
                height=NODE_HEIGHT,
                label=_cut(spec.label),
                state=spec.state,
                state_label=spec.state_label,
                href=spec.href,
                tooltip=spec.tooltip or f"{spec.label}: {spec.state_label}",
                layer=layer[key],
            )
        )
    drawn_edges = [DagEdge(_path(chain, centre), "dag-edge") for chain in chains]
    width = MARGIN * 2 + max(depth, 1) * pitch_x - COLUMN_GAP
    height = MARGIN * 2 + max(tallest, 1) * pitch_y - ROW_GAP
    in_use = sorted({s.state for s in specs})
    words = states or {}
    legend = [(state, words.get(state, state)) for state in in_use]
    counts = {state: sum(1 for s in specs if s.state == state) for state in in_use}
    summary = ", ".join(f"{counts[s]} {words.get(s, s)}" for s in in_use)
    desc = (
        f"{len(specs)} step{'s' if len(specs) != 1 else ''} in {depth} column"
        f"{'s' if depth != 1 else ''}, {len(pairs)} dependenc{'ies' if len(pairs) != 1 else 'y'}"
        + (f": {summary}" if summary else "")
        + ". The table below lists every step with its dependencies, state and job."
    )
    return DagDrawing(id, title, desc, int(width), int(height), nodes, drawn_edges, legend)


def _path(chain: Sequence[str], centre: dict[str, tuple[float, float]]) -> str:
    """From the right side of the upstream box to the left side of the downstream one,
    through the bend points, as smooth horizontal-tangent curves."""
    half = NODE_WIDTH / 2
    points: list[tuple[float, float]] = []
    for i, key in enumerate(chain):
        x, y = centre[key]
        if key.startswith("\x00"):
            points.append((x - half, y))
            points.append((x + half, y))
        elif i == 0:
            points.append((x + half, y))
        else:
            points.append((x - half, y))
    parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if y0 == y1:
            parts.append(f"L{x1:.1f},{y1:.1f}")
            continue
        mid = (x0 + x1) / 2
        parts.append(f"C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
    return " ".join(parts)
