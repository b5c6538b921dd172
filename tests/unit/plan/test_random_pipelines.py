"""Random valid pipelines (random DAGs over one generated step) compile, and the node order respects
every edge."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.model import EdgeKind
from valohai_airflow.spec.diagnostics import ValohaiSpecError

NAME = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABC0123456789-_ é"), min_size=1, max_size=12
).filter(lambda s: s.strip() == s)


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[str, list[str], list[tuple[str, str, str, str]]]:
    parameters = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    inputs = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    nodes = draw(st.lists(NAME, min_size=1, max_size=10, unique_by=str.lower))
    rank = draw(st.permutations(range(len(nodes))))  # edges only go from lower to higher rank: a DAG
    edges: list[tuple[str, str, str, str]] = []
    filled: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(0, 25))):
        a, b = draw(st.tuples(st.sampled_from(nodes), st.sampled_from(nodes)))
        if rank[nodes.index(a)] == rank[nodes.index(b)]:
            continue
        source, target = (a, b) if rank[nodes.index(a)] < rank[nodes.index(b)] else (b, a)
        kind = draw(st.sampled_from(["output", "input", "metadata", "parameter", "dependency"]))
        if kind in ("metadata", "parameter"):
            key = draw(st.sampled_from(parameters))
            if (target, key) in filled:
                continue
            filled.add((target, key))
            source_key = key if kind == "parameter" else "metric"
            edges.append((f"{source}.{kind}.{source_key}", f"{target}.parameter.{key}", source, target))
        elif kind == "dependency":
            edges.append((f"{source}.dependency.x", f"{target}.dependency.x", source, target))
        else:
            source_key = "*.bin" if kind == "output" else draw(st.sampled_from(inputs))
            edges.append(
                (
                    f"{source}.{kind}.{source_key}",
                    f"{target}.input.{draw(st.sampled_from(inputs))}",
                    source,
                    target,
                )
            )
    step = {
        "step": {
            "name": "s",
            "image": "busybox",
            "command": "date",
            "parameters": [{"name": p, "type": "integer", "default": 1} for p in parameters],
            "inputs": [{"name": i} for i in inputs],
        }
    }
    pipeline = {
        "pipeline": {
            "name": "random",
            "nodes": [{"name": n, "type": "execution", "step": "s"} for n in nodes],
            "edges": [[s, t] for s, t, _, _ in edges],
        }
    }
    # JSON is YAML: no quoting surprises for generated names.
    return json.dumps([step, pipeline], ensure_ascii=False), nodes, edges


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_random_dags_compile_in_an_order_that_respects_every_edge(
    case: tuple[str, list[str], list[tuple[str, str, str, str]]],
) -> None:
    text, nodes, edges = case
    plan = compile_text(text)
    (pipeline,) = plan.pipelines
    assert plan.diagnostics == ()
    assert sorted(n.name for n in pipeline.nodes) == sorted(nodes)
    assert [(e.source_node, e.target_node) for e in pipeline.edges] == [(s, t) for _, _, s, t in edges]
    position = {node.name: i for i, node in enumerate(pipeline.nodes)}
    assert all(position[e.source_node] < position[e.target_node] for e in pipeline.edges)
    assert len({n.task_id for n in pipeline.nodes}) == len(nodes)
    assert all(
        e.target_kind in (EdgeKind.INPUT, EdgeKind.PARAMETER, EdgeKind.DEPENDENCY) for e in pipeline.edges
    )


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(), st.data())
def test_closing_any_path_into_a_cycle_is_reported(
    case: tuple[str, list[str], list[tuple[str, str, str, str]]], data: st.DataObject
) -> None:
    """Adding a back edge along an existing edge always makes a cycle that the compiler names."""
    text, _, edges = case
    if not edges:
        return
    _, _, source, target = data.draw(st.sampled_from(edges))
    document = json.loads(text)
    document[1]["pipeline"]["edges"].append([f"{target}.dependency.y", f"{source}.dependency.y"])
    try:
        compile_text(json.dumps(document, ensure_ascii=False))
    except ValohaiSpecError as exc:
        (error,) = exc.diagnostics
        assert "the edges form a cycle: " in error.message
        named = error.message.split("cycle: ", 1)[1].split(" → ")
        assert named[0] == named[-1]
        assert source in named and target in named
    else:
        raise AssertionError("cycle not reported")
