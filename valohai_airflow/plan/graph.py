"""Order and cycles of a pipeline graph, kept apart from valohai.yaml so it is easy to test on its own."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence


def topological_order(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """Nodes so that every edge goes forward; ties keep the order of `nodes` (the YAML order), so the
    result is stable. None when the graph has a cycle."""
    index = {name: i for i, name in enumerate(nodes)}
    successors: dict[str, set[str]] = {name: set() for name in nodes}
    indegree = dict.fromkeys(nodes, 0)
    for source, target in edges:
        if target not in successors[source]:
            successors[source].add(target)
            indegree[target] += 1
    ready = [index[name] for name in nodes if indegree[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = nodes[heapq.heappop(ready)]
        order.append(name)
        for target in successors[name]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, index[target])
    return order if len(order) == len(nodes) else None


def find_cycles(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a closed walk `[a, b, a]`, in the
    order of `nodes`.

    Reporting one per component (not every elementary cycle, which can be exponentially many) names
    each independent mistake once.
    """
    successors: dict[str, list[str]] = {name: [] for name in nodes}
    for source, target in edges:
        if target not in successors[source]:
            successors[source].append(target)
    position = {name: i for i, name in enumerate(nodes)}
    cycles: list[list[str]] = []
    components = sorted(_strongly_connected(nodes, successors), key=lambda c: min(position[n] for n in c))
    for component in components:
        start = min(component, key=position.__getitem__)
        if len(component) == 1 and start not in successors[start]:
            continue
        cycles.append(_cycle_through(start, component, successors))
    return cycles


def _strongly_connected(nodes: Sequence[str], successors: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so a long chain cannot hit Python's recursion limit."""
    counter = 0
    low: dict[str, int] = {}
    number: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in nodes:
        if root in number:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            name, child_index = work.pop()
            if child_index == 0:
                number[name] = low[name] = counter
                counter += 1
                stack.append(name)
                on_stack.add(name)
            children = successors[name]
            if child_index < len(children):
                work.append((name, child_index + 1))
                child = children[child_index]
                if child not in number:
                    work.append((child, 0))
                elif child in on_stack:
                    low[name] = min(low[name], number[child])
                continue
            if low[name] == number[name]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == name:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[name])
    return components


def _cycle_through(start: str, component: set[str], successors: dict[str, list[str]]) -> list[str]:
    """The shortest walk from `start` back to itself inside its component (breadth-first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for name in frontier:
            for child in successors[name]:
                if child not in component:
                    continue
                if child == start:
                    path = [name]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = name
                    following.append(child)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle through each member")
