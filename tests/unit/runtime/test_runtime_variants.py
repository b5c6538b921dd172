"""A task node's executions at run time, and what a task node upstream gives its edges."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.blueprints import VariantError
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.edge_resolution import EdgeResolutionError, resolve_edges
from valohai_airflow.runtime.fan_out import node_variants
from valohai_airflow.runtime.manifest import Manifest, ManifestFile, load_upstream

YAML = """\
- step:
    name: list
    image: busybox
    command: list
- step:
    name: work
    image: busybox
    command: work {parameters}
    parameters:
      - {name: id, type: integer}
      - {name: scale, type: integer, default: 1}
      - {name: tags, type: string, multiple: separate, optional: true}
    inputs:
      - {name: x, optional: true}
    environment-variables:
      - {name: MODE, default: x}
- task:
    name: sweep
    step: work
    parameters:
      - {name: scale, style: multiple, rules: {items: [1, 2]}}
- pipeline:
    name: p
    parameters:
      - {name: ids, targets: [work.parameter.id], default: [7]}
    nodes:
      - {name: list, type: execution, step: list}
      - {name: work, type: task, task: sweep}
      - {name: report, type: execution, step: work}
    edges:
      - [list.metadata.tags, work.parameter.tags]
      - [work.output.*, report.input.x]
      - [work.metadata.score, report.parameter.tags]
      - [work.environment-variable.MODE, report.environment-variable.MODE]
"""


@pytest.fixture(scope="module")
def plan() -> PipelinePlan:
    text = YAML.replace("      - [work.output.*, report.input.x]\n", "")
    (pipeline,) = compile_text(text).pipelines
    return pipeline


def test_blueprint_variants_times_a_list_pipeline_parameter(plan: PipelinePlan) -> None:
    variants = node_variants(plan, plan.node("work"), {"ids": [3, 4]}, {})
    assert variants == [
        {"scale": 1, "id": 3},
        {"scale": 1, "id": 4},
        {"scale": 2, "id": 3},
        {"scale": 2, "id": 4},
    ]


def test_a_scalar_does_not_spread_and_a_multiple_parameter_takes_its_list_whole(plan: PipelinePlan) -> None:
    variants = node_variants(plan, plan.node("work"), {"ids": 5}, {"tags": ["a", "b"]})
    assert variants == [{"scale": 1}, {"scale": 2}]  # id stays 5 for both; tags is multiple: not spread


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"a": 1}, "gives parameter 'id' a mapping"),
        ([], "an empty list, so the task node would run no execution"),
        (list(range(600)), "1,200 executions, more than the 1,024"),
    ],
)
def test_values_a_task_node_cannot_fan_out_over(plan: PipelinePlan, ids: Any, expected: str) -> None:
    with pytest.raises(VariantError, match=expected) as caught:
        node_variants(plan, plan.node("work"), {"ids": ids}, {})
    assert "node 'work': pipeline parameter 'ids'" in str(caught.value)


def test_an_execution_node_runs_once(plan: PipelinePlan) -> None:
    assert node_variants(plan, plan.node("report"), {}, {}) == [{}]


def execution(
    map_index: int,
    score: int,
    variables: tuple[str, ...] = ("MODE",),
    files: tuple[str, ...] = ("model.txt",),
) -> Manifest:
    return Manifest(
        execution_id=f"e{map_index}",
        node="work",
        map_index=map_index,
        step="work",
        image="busybox",
        metadata={"score": score},
        variables=list(variables),
        outputs=[ManifestFile(path=f, uri=f"file:///s/{map_index}/{f}", size=1) for f in files],
    )


def test_a_task_node_upstream_gives_every_file_and_a_list_of_values() -> None:
    (pipeline,) = compile_text(YAML).pipelines
    upstream = load_upstream({"work": [execution(2, 30).model_dump(mode="json"), execution(0, 10)]})
    assert [m.map_index for m in upstream["work"]] == [0, 2]  # map-index order, whatever Airflow gave
    values = resolve_edges(pipeline, pipeline.node("report"), upstream)
    assert [(f.name, f.uri) for f in values.inputs["x"]] == [
        ("model.txt", "file:///s/0/model.txt"),
        ("work-2-model.txt", "file:///s/2/model.txt"),
    ]
    assert values.parameters == {"tags": [10, 30]}
    assert values.dropped_variables == set()  # MODE's value comes from its source, not the manifest
    assert "input 'x': 'model.txt' from work-2 arrives as 'work-2-model.txt'" in values.log


def test_a_lone_execution_is_a_list_of_one_and_an_upstream_without_the_variable_fails() -> None:
    (pipeline,) = compile_text(YAML).pipelines
    alone = resolve_edges(pipeline, pipeline.node("report"), load_upstream({"work": execution(0, 10)}))
    assert alone.parameters == {"tags": [10]}
    upstream = load_upstream({"work": [execution(0, 1), execution(1, 2, variables=())]})
    with pytest.raises(EdgeResolutionError, match="'work-1' has no environment variable 'MODE'"):
        resolve_edges(pipeline, pipeline.node("report"), upstream)


def test_two_spreads_of_one_pipeline_parameter_follow_its_targets_order() -> None:
    """Spreads combine in the order of pipeline parameters and, within one, of its targets (here the
    reverse of the step's parameter order); the grid's order is the map indexes' order."""
    (pipeline,) = compile_text(
        """
        - step:
            name: s
            image: busybox
            command: echo {parameters}
            parameters:
              - {name: a, type: integer}
              - {name: b, type: integer}
        - pipeline:
            name: p
            parameters:
              - {name: both, targets: [n.parameter.b, n.parameter.a], default: [1, 2]}
            nodes:
              - {name: n, type: task, step: s}
            edges: []
        """
    ).pipelines
    variants = node_variants(pipeline, pipeline.node("n"), {}, {})
    assert [(v["b"], v["a"]) for v in variants] == [(1, 1), (1, 2), (2, 1), (2, 2)]
