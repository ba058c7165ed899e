"""The workflow graph's layered layout (web/dag.py): layers follow the dependencies, no
two boxes overlap, edges run between columns, and the same graph always gives the same
picture."""

from __future__ import annotations

import random

from oban_powertools.web.dag import NODE_WIDTH, NodeSpec, layers_of, layout


def specs(keys: list[str]) -> list[NodeSpec]:
    return [NodeSpec(k, k, "suspended", "waiting") for k in keys]


def random_dag(n: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    keys = [f"s{i:03}" for i in range(n)]
    edges = [
        (keys[j], keys[i])
        for i in range(1, n)
        for j in rng.sample(range(i), min(i, rng.randint(0, 3)))
    ]
    return keys, edges


def test_layers_respect_dependencies() -> None:
    keys, edges = random_dag(120, 1)
    layer = layers_of(keys, edges)
    for up, down in edges:
        assert layer[up] < layer[down]
    # Longest path: a step sits exactly one column after its deepest dependency.
    for key in keys:
        deps = [u for u, d in edges if d == key]
        assert layer[key] == (max(layer[u] for u in deps) + 1 if deps else 0)


def test_diamond() -> None:
    drawing = layout(
        specs(["a", "b", "c", "d"]),
        [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        states={"suspended": "waiting"},
    )
    by_label = {n.label: n for n in drawing.nodes}
    assert [by_label[k].layer for k in "abcd"] == [0, 1, 1, 2]
    assert by_label["b"].x == by_label["c"].x and by_label["b"].y != by_label["c"].y
    assert len(drawing.edges) == 4
    assert drawing.desc.startswith("4 steps in 3 columns, 4 dependencies: 4 waiting.")


def test_no_boxes_overlap_and_edges_run_left_to_right() -> None:
    keys, edges = random_dag(200, 7)
    drawing = layout(specs(keys), edges)
    boxes = [(n.x, n.y, n.x + n.width, n.y + n.height) for n in drawing.nodes]
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[2] <= drawing.width and 0 <= a[1] and a[3] <= drawing.height
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert len(drawing.edges) == len(set(edges))
    for edge in drawing.edges:
        xs = [
            float(p.split(",")[0])
            for p in edge.path.replace("M", " ").replace("C", " ").replace("L", " ").split()
            if "," in p
        ]
        assert xs == sorted(xs)  # every edge moves rightwards, dependency to dependent


def test_deterministic_whatever_the_input_order() -> None:
    keys, edges = random_dag(80, 3)
    first = layout(specs(keys), edges)
    shuffled_keys, shuffled_edges = keys[:], edges[:]
    random.Random(5).shuffle(shuffled_keys)
    random.Random(6).shuffle(shuffled_edges)
    again = layout(specs(shuffled_keys), shuffled_edges)
    assert first == again


def test_barycentre_ordering_removes_crossings() -> None:
    # Two independent chains whose starts are ordered against their ends: x1 -> y2, x2 -> y1
    # with y1 < y2 by name. Ordering puts each end beside its start: no crossing.
    drawing = layout(specs(["a", "b", "y", "z"]), [("a", "z"), ("b", "y")])
    pos = {n.label: n.y for n in drawing.nodes}
    assert (pos["a"] < pos["b"]) == (pos["z"] < pos["y"])


def test_long_edges_bend_between_boxes() -> None:
    # a -> b -> c -> d and a -> d: the long edge gets a bend point in each column between.
    drawing = layout(specs(list("abcd")), [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    nodes = {n.label: n for n in drawing.nodes}
    long = [e for e in drawing.edges if e.path.count("C") + e.path.count("L") > 1]
    assert len(long) == 1
    # It never passes through the boxes of b or c.
    for key in "bc":
        box = nodes[key]
        assert f"{box.x:.1f},{box.y + box.height / 2:.1f}" not in long[0].path
    assert drawing.width == 8 * 2 + 4 * (NODE_WIDTH + 56) - 56


def test_names_are_cut_and_never_ids() -> None:
    long_name = "a-very-long-step-name-for-a-box"
    drawing = layout([NodeSpec(long_name, long_name, "completed", "completed")], [])
    (node,) = drawing.nodes
    assert node.label.endswith("…") and len(node.label) == 20
    assert long_name in node.tooltip and long_name not in node.id
    assert layout([], []).nodes == []
