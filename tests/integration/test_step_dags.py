"""Steps and task blueprints run on their own (issue 25), for real: the loader's DagBag, `dag.test()`,
real containers, the local store.

A project without pipelines used to show nothing at all; now each step is a manually triggered DAG
that runs the step with the whole execution contract, and each blueprint a DAG of mapped executions.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, add_project, dag_bag
from valohai_airflow.runtime.ids import ExecutionKey

STORE = AIRFLOW_HOME / "valohai" / "store"

COMMANDS = [
    'echo "epochs={parameter-value:epochs} mode=$MODE pipeline=${VH_PIPELINE_ID:-none}" > /valohai/outputs/model.txt',
    "cat /valohai/inputs/data/* >> /valohai/outputs/model.txt",
    r"""printf '\173"loss": 0.25, "epochs": %s}\n' {parameter-value:epochs}""",  # \173 is "{"
]
STEPS_ONLY = textwrap.dedent(
    f"""\
    - step:
        name: train model
        image: {BUSYBOX}
        command: {json.dumps(COMMANDS)}
        environment-variables:
          - {{name: MODE, default: fast}}
        parameters:
          - {{name: epochs, type: integer, default: 5, min: 1, max: 50}}
        inputs:
          - {{name: data, default: data.txt}}
    - task:
        name: sweep
        step: train model
        type: grid_search
        parameters:
          - {{name: epochs, style: multiple, rules: {{items: [1, 2, 3]}}}}
    """
)
BROKEN = "- step:\n    name: x\n    image: busybox\n    command: date\n- pipeline:\n    name: p\n    nodes:\n      - {name: a, type: execution, step: y}\n    edges: []\n"


def _bag(dags_folder: Path) -> Any:
    add_project(dags_folder, "solo", STEPS_ONLY, {"data.txt": "rows\n"})
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    return bag


def _step_dag(bag: Any) -> Any:
    (dag,) = (d for d in bag.dags.values() if d.dag_display_name == "train model")
    return dag


def test_a_project_without_pipelines_shows_a_dag_per_step_and_blueprint(dags_folder: Path) -> None:
    add_project(dags_folder, "broken", BROKEN)
    bag = _bag(dags_folder)
    step_dag = _step_dag(bag)
    assert step_dag.dag_id.startswith("solo__step__train_model_")
    assert sorted(bag.dags) == sorted([step_dag.dag_id, "solo__task__sweep", "valohai_error__broken"])
    assert set(step_dag.tags) == {"valohai", "valohai-step", "solo"} and step_dag.schedule is None
    assert set(bag.dags["solo__task__sweep"].tags) == {"valohai", "valohai-task", "solo"}
    # a broken neighbour is one error DAG (its step does not load half-way), and hides nothing
    assert 'step "y" does not exist' in bag.dags["valohai_error__broken"].description


@pytest.mark.usefixtures("airflow_db", "docker_engine")
def test_a_step_dag_runs_with_the_execution_contract(dags_folder: Path) -> None:
    dag = _step_dag(_bag(dags_folder))
    run = dag.test(run_conf={"train model.parameter.epochs": 7, "train model.variable.MODE": "slow"})
    assert run.state == "success"
    (ti,) = run.get_task_instances()
    manifest = ti.xcom_pull(task_ids=ti.task_id)
    assert (manifest["node"], manifest["step"], manifest["exit_code"]) == ("train model", "train model", 0)
    assert manifest["parameters"] == {"epochs": 7}
    assert manifest["metadata"] == {"loss": 0.25, "epochs": 7}
    (output,) = manifest["outputs"]
    key = ExecutionKey(dag.dag_id, run.run_id, ti.task_id)
    stored = STORE / key.prefix / "outputs" / "model.txt"
    assert output["uri"] == stored.as_uri()
    # the form's environment variable reached the container; no pipeline id, as on Valohai
    assert stored.read_text() == "epochs=7 mode=slow pipeline=none\nrows\n"
    (series,) = (STORE / key.prefix / "metadata.jsonl").read_text().splitlines()
    assert {k: v for k, v in json.loads(series).items() if k != "_time"} == {"loss": 0.25, "epochs": 7}


@pytest.mark.usefixtures("airflow_db", "docker_engine")
def test_a_blueprint_dag_runs_its_variants_as_mapped_executions(dags_folder: Path) -> None:
    dag = _bag(dags_folder).dags["solo__task__sweep"]
    run = dag.test()
    assert run.state == "success"
    executions = sorted(
        (t for t in run.get_task_instances() if t.task_id == "sweep" and t.map_index >= 0),
        key=lambda t: t.map_index,
    )
    assert [t.rendered_map_index for t in executions] == ["epochs=1", "epochs=2", "epochs=3"]
    assert [
        t.xcom_pull(task_ids="sweep", map_indexes=t.map_index)["metadata"]["epochs"] for t in executions
    ] == [
        1,
        2,
        3,
    ]


@pytest.mark.usefixtures("airflow_db", "docker_engine")
def test_a_step_whose_image_cannot_be_pulled_fails_with_the_images_name(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.execution_time import supervisor

    image = "valohai-airflow/no-such-image:0"
    add_project(dags_folder, "noimage", f"- step:\n    name: s\n    image: {image}\n    command: date\n")
    dag = dag_bag(dags_folder).dags["noimage__step__s"]
    errors: list[str] = []
    original = supervisor.run_task_in_process

    def recording(ti: Any, task: Any, client: Any = None) -> Any:
        result = original(ti=ti, task=task, client=client)
        errors.append(str(result.error))
        return result

    monkeypatch.setattr(supervisor, "run_task_in_process", recording)
    run = dag.test()
    assert run.state == "failed"
    (message,) = errors
    assert image in message and "'s'" in message, message
