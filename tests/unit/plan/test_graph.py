"""Topological order and cycle naming, on plain graphs."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from valohai_airflow.plan.graph import find_cycles, topological_order


def test_order_is_stable_and_keeps_yaml_order_for_ties() -> None:
    nodes = ["c", "a", "b", "d"]
    assert topological_order(nodes, []) == nodes
    assert topological_order(nodes, [("b", "c")]) == ["a", "b", "c", "d"]
    assert topological_order(nodes, [("b", "c"), ("b", "c")]) == ["a", "b", "c", "d"]


def test_cycle_is_none_and_named() -> None:
    nodes = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
    assert topological_order(nodes, edges) is None
    assert find_cycles(nodes, edges) == [["a", "b", "c", "a"]]


def test_self_loop_and_independent_cycles_are_each_reported_once() -> None:
    nodes = ["a", "b", "c", "d", "e"]
    edges = [("a", "a"), ("b", "c"), ("c", "b"), ("c", "d"), ("d", "e"), ("e", "d")]
    assert sorted(find_cycles(nodes, edges)) == [["a", "a"], ["b", "c", "b"], ["d", "e", "d"]]


def test_shortest_cycle_inside_a_component() -> None:
    nodes = ["a", "b", "c", "d"]
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("b", "a")]
    assert find_cycles(nodes, edges) == [["a", "b", "a"]]


def test_long_chain_does_not_recurse() -> None:
    nodes = [f"n{i}" for i in range(5000)]
    edges = [*pairwise(nodes), (nodes[-1], nodes[0])]
    (cycle,) = find_cycles(nodes, edges)
    assert cycle[0] == cycle[-1] == "n0"
    assert len(cycle) == 5001


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]]]:
    size = draw(st.integers(1, 12))
    nodes = [f"n{i}" for i in range(size)]
    pairs = st.tuples(st.sampled_from(nodes), st.sampled_from(nodes))
    return nodes, draw(st.lists(pairs, max_size=30))


@given(graphs())
def test_order_exists_exactly_when_there_is_no_cycle(graph: tuple[list[str], list[tuple[str, str]]]) -> None:
    nodes, edges = graph
    order = topological_order(nodes, edges)
    cycles = find_cycles(nodes, edges)
    assert (order is None) == bool(cycles)
    if order is not None:
        assert sorted(order) == sorted(nodes)
        position = {n: i for i, n in enumerate(order)}
        assert all(position[s] < position[t] for s, t in edges)
    edge_set = set(edges)
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        assert all(step in edge_set for step in pairwise(cycle))
