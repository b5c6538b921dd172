"""Task nodes as Airflow's dynamic task mapping, run for real: `dag.test()`, real containers.

A task node is `<node>__variants` (the list of parameter sets, worked out at run time) and the
node's mapped executions, one map index each. `dag.test()` runs one task instance at a time, so a
failed execution's siblings that have not started yet are the ones stop-all skips.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.integration.pipelines import run_pipeline, step

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PREFIX = "tn"

TRAIN = step(
    "train",
    r"echo epochs={parameter-value:epochs} lr={parameter-value:lr} > /valohai/outputs/model.txt; "
    r"printf '\173" + '"score": %s}' + r"\n' {parameter-value:epochs}",
    """
    parameters:
      - {name: epochs, type: integer, default: 9}
      - {name: lr, type: float, default: 0.5}
    """,
)
COLLECT = step(
    "collect",
    "ls /valohai/inputs/models > /valohai/outputs/names.txt; cat /valohai/inputs/models/*",
    """
    inputs:
      - {name: models, optional: true}
    parameters:
      - {name: scores, type: integer, multiple: separate, optional: true}
    """,
)


def test_blueprint_grid_fans_out_and_every_output_flows_downstream(dags_folder: Path) -> None:
    yaml = (
        TRAIN
        + COLLECT
        + textwrap.dedent(
            """\
            - task:
                name: sweep
                step: train
                parameters:
                  - {name: epochs, style: multiple, rules: {items: [1, 2]}}
                  - {name: lr, style: logspace, rules: {start: -2, end: -1, count: 2}}
            - pipeline:
                name: p
                nodes:
                  - {name: train, type: task, task: sweep}
                  - {name: collect, type: execution, step: collect}
                edges:
                  - [train.output.model.txt, collect.input.models]
                  - [train.metadata.score, collect.parameter.scores]
            """
        )
    )
    outcome = run_pipeline(dags_folder, f"{PREFIX}-grid", yaml)
    assert outcome.state == "success", outcome.states
    grid = [
        {"epochs": 1, "lr": 0.01},
        {"epochs": 1, "lr": 0.1},
        {"epochs": 2, "lr": 0.01},
        {"epochs": 2, "lr": 0.1},
    ]
    assert outcome.xcom("train__variants") == grid

    executions = outcome.executions("train")
    assert [str(t.state) for t in executions] == ["success"] * 4
    assert [t.rendered_map_index for t in executions] == [
        "epochs=1, lr=0.01",
        "epochs=1, lr=0.1",
        "epochs=2, lr=0.01",
        "epochs=2, lr=0.1",
    ]
    manifests = [t.xcom_pull(task_ids="train", map_indexes=t.map_index) for t in executions]
    assert [m["parameters"] for m in manifests] == grid
    assert [(m["map_index"], m["variant"]) for m in manifests] == list(enumerate(grid))

    collected = outcome.xcom("collect")
    # every execution's model.txt arrives; the first keeps its name, later ones carry their map index
    assert [f["path"] for f in collected["inputs"]["models"]] == [
        "model.txt",
        "train-1-model.txt",
        "train-2-model.txt",
        "train-3-model.txt",
    ]
    assert collected["parameters"]["scores"] == [1, 1, 2, 2]  # a metadata edge: one value per execution


LIST = step("list", r"printf '\173" + '"ids": [3, 5, 7], "config": {"a": 1}}' + r"\n'")
WORK = step(
    "work",
    r"printf '\173" + '"out": %s}' + r"\n' {parameter-value:id}",
    """
    parameters:
      - {name: id, type: integer}
      - {name: scale, type: integer, default: 1}
    """,
)


def spread_pipeline(source_key: str) -> str:
    return (
        LIST
        + WORK
        + textwrap.dedent(
            f"""\
            - pipeline:
                name: p
                parameters:
                  - name: scales
                    targets: [work.parameter.scale]
                    default: [1, 2]
                nodes:
                  - {{name: list, type: execution, step: list}}
                  - {{name: work, type: task, step: work}}
                edges:
                  - [list.metadata.{source_key}, work.parameter.id]
            """
        )
    )


def test_list_metadata_and_list_pipeline_parameter_spread_over_a_task_node(dags_folder: Path) -> None:
    outcome = run_pipeline(dags_folder, f"{PREFIX}-spread", spread_pipeline("ids"), conf={"scales": [10]})
    assert outcome.state == "success", outcome.states
    executions = outcome.executions("work")
    assert [t.rendered_map_index for t in executions] == [
        "scale=10, id=3",
        "scale=10, id=5",
        "scale=10, id=7",
    ]
    outs = [t.xcom_pull(task_ids="work", map_indexes=t.map_index)["metadata"]["out"] for t in executions]
    assert outs == [3, 5, 7]


def test_a_mapping_into_a_task_node_fails_before_any_execution(dags_folder: Path) -> None:
    outcome = run_pipeline(dags_folder, f"{PREFIX}-dict", spread_pipeline("config"))
    assert outcome.state == "failed"
    variants = outcome.ti("work__variants")
    assert str(variants.state) == "failed"
    assert outcome.executions("work") == []  # nothing was expanded, no container started
    assert outcome.states["work"] == "upstream_failed"


MAYBE = step(
    "maybe",
    r"echo id={parameter-value:id} > /valohai/outputs/out-{parameter-value:id}.txt; "
    r"test {parameter-value:id} != 1",
    """
    parameters:
      - {name: id, type: integer}
    """,
)
OK = step("ok", "echo ok", "inputs:\n  - {name: x, optional: true}\n")


def failing_sweep(node_extra: str = "", blueprint_extra: str = "") -> str:
    """work (ids 1, 2, 3; id 1 fails) → after; an independent branch side → after-side → last."""
    return (
        MAYBE
        + OK
        + textwrap.dedent(
            f"""\
            - task:
                name: sweep
                step: maybe
                parameters:
                  - {{name: id, style: multiple, rules: {{items: [1, 2, 3]}}}}
                {blueprint_extra}
            - pipeline:
                name: p
                nodes:
                  - name: work
                    type: task
                    task: sweep
                    {node_extra}
                  - {{name: after, type: execution, step: ok}}
                  - {{name: side, type: execution, step: ok}}
                  - {{name: after-side, type: execution, step: ok}}
                  - {{name: last, type: execution, step: ok}}
                edges:
                  - [work.output.*, after.input.x]
                  - [side.output.*, after-side.input.x]
                  - [after-side.output.*, last.input.x]
            """
        )
    )


def test_stop_all_execution_failure_stops_the_pipeline(dags_folder: Path) -> None:
    """dag.test runs a batch of ready task instances whole: the siblings and after-side start in the
    failed execution's batch, `last` comes after it and is skipped. (That siblings that have not
    started are skipped too is seen with the real scheduler: tests/e2e.)"""
    outcome = run_pipeline(dags_folder, f"{PREFIX}-stopall", failing_sweep())
    assert outcome.state == "failed"
    assert str(outcome.executions("work")[0].state) == "failed"
    assert outcome.states["after"] == "upstream_failed", outcome.states
    assert outcome.states["last"] == "skipped", outcome.states


def test_continue_and_complete_runs_downstream_with_the_executions_that_succeeded(
    dags_folder: Path,
) -> None:
    yaml = failing_sweep(blueprint_extra="on-child-error: continue-and-complete")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-cont", yaml)
    assert [str(t.state) for t in outcome.executions("work")] == ["failed", "success", "success"]
    after = outcome.xcom("after")
    assert [f["path"] for f in after["inputs"]["x"]] == ["out-2.txt", "out-3.txt"]
    assert outcome.states["after-side"] == "success"
    assert outcome.state == "success", outcome.states


def test_stop_next_lets_siblings_and_other_branches_finish(dags_folder: Path) -> None:
    outcome = run_pipeline(dags_folder, f"{PREFIX}-next", failing_sweep(node_extra="on-error: stop-next"))
    assert [str(t.state) for t in outcome.executions("work")] == ["failed", "success", "success"]
    assert outcome.states["after"] == "upstream_failed"
    assert (outcome.states["side"], outcome.states["after-side"]) == ("success", "success")
    assert outcome.state == "failed"
