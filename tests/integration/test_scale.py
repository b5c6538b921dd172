"""A pipeline of 1,000 nodes through the real loader, Airflow's serializer and `dag.test()`.

The DAG's Params are set once the tasks exist (an operator made under a DAG deep-copies the DAG's
whole ParamsDict, which made building nodes × params). These tests prove on a large pipeline that
what reads the Params still sees all of them: the serialized DAG the trigger form is drawn from,
run-conf validation, the task docs, and the run time (pipeline parameters, node parameters from the
run conf and their defaults, parameter edges, a task node's variants).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BUSYBOX, add_project, dag_bag
from tests.support.synthetic import synthetic_yaml
from valohai_airflow.plan.conf_keys import REUSE_NODES_KEY, REUSE_RUN_KEY, REUSE_UPSTREAM_OF_KEY

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

SYNTHETIC_NODES = 996  # plus the four nodes below: 1,000

PROBE_STEP = [
    "- step:",
    "    name: probe",
    f"    image: {BUSYBOX}",
    "    command: echo {parameters}",
    "    parameters:",
    "      - {name: epochs, type: integer, default: 1, min: 1}",
    "      - {name: label, type: string, default: plain}",
]
PROBE_NODES = [
    "      - {name: first, type: execution, step: probe}",
    "      - {name: second, type: execution, step: probe}",
    "      - {name: sweep, type: task, step: probe}",
    "      - {name: last, type: execution, step: work-3}",
]
PROBE_EDGES = [
    "      - [first.parameter.epochs, second.parameter.epochs]",
]
PIPELINE_PARAMETERS = [
    "      - name: label",
    "        targets: [second.parameter.label]",
    "        default: from-pipeline",
    "      - name: sweep-epochs",
    "        targets: [sweep.parameter.epochs]",
    "        default: [2, 3]",
]


def large_yaml() -> str:
    return synthetic_yaml(
        SYNTHETIC_NODES,
        4 * SYNTHETIC_NODES,
        more_steps=PROBE_STEP,
        more_nodes=PROBE_NODES,
        more_edges=PROBE_EDGES,
        pipeline_parameters=PIPELINE_PARAMETERS,
    )


def large_dag(dags_folder: Path) -> Any:
    add_project(dags_folder, "big", large_yaml())
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    return bag.dags["big__synthetic"]


def test_every_param_reaches_the_dag_and_none_is_copied_into_tasks(dags_folder: Path) -> None:
    dag = large_dag(dags_folder)
    assert len(dag.task_dict) == 1001  # sweep is its variants task and its mapped executions
    # every node parameter nothing else fills, every input's URLs, the pipeline parameters
    expected = {f"n{i}.parameter.size-{i % 10}" for i in range(SYNTHETIC_NODES)}
    expected |= {f"n{i}.input.data" for i in range(SYNTHETIC_NODES)}
    expected |= {
        "first.parameter.epochs",
        "first.parameter.label",
        "label",
        "sweep-epochs",
        "sweep.parameter.label",
    }
    expected |= {"last.parameter.size-3", "last.input.data"}
    expected |= {REUSE_RUN_KEY, REUSE_NODES_KEY, REUSE_UPSTREAM_OF_KEY}  # reuse nodes of an earlier run
    assert set(dag.params) == expected
    param = dag.params.get_param("n517.parameter.size-7")
    assert param.value == 7
    assert param.schema == {"type": "integer", "minimum": 0, "title": "size-7", "section": "n517"}
    assert all(not task.params for task in dag.tasks), "a task carries its own copy of the DAG's Params"


def test_the_serialized_dag_the_trigger_form_reads_has_every_param(dags_folder: Path) -> None:
    """The API server and the trigger form read the serialized DAG, not the Python object."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = large_dag(dags_folder)
    data = DagSerialization.to_dict(dag)
    restored = DagSerialization.from_dict(data)
    assert set(restored.params) == set(dag.params)
    for key in ("n3.parameter.size-3", "sweep-epochs", "label", "n900.input.data"):
        assert restored.params.get_param(key).schema == dag.params.get_param(key).schema, key
        assert restored.params.get_param(key).value == dag.params.get_param(key).value, key
    assert not any("params" in task for task in data["dag"]["tasks"])
    # linear in nodes + params: one copy of the Params, not one per task
    assert len(json.dumps(data)) < 4_000_000


def test_run_conf_is_validated_against_a_deep_nodes_param(dags_folder: Path) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    dag = large_dag(dags_folder)
    with pytest.raises(ParamValidationError) as raised:
        dag.test(run_conf={"n990.parameter.size-0": "many"})
    message = str(raised.value)
    assert "n990.parameter.size-0" in message and "'many'" in message, message


def test_task_docs_show_each_nodes_own_defaults(dags_folder: Path) -> None:
    dag = large_dag(dags_folder)
    doc = dag.get_task("n994").doc_md
    assert "echo --size-4=4" in doc, doc
    assert "trigger form `n994.parameter.size-4`" in doc, doc
    second = dag.get_task("second").doc_md
    assert "pipeline parameter `label`" in second and "edge `first.parameter.epochs`" in second, second


def test_run_time_params_on_a_large_pipeline(dags_folder: Path) -> None:
    """The synthetic nodes are marked successful without running (their containers would take
    minutes; they return no manifest, so no probe node takes files from them); the probe nodes run
    for real and report what they were given."""
    dag = large_dag(dags_folder)
    started = time.monotonic()
    run = dag.test(
        run_conf={"first.parameter.epochs": 7, "label": "from-conf", "sweep-epochs": [4, 5, 6]},
        mark_success_pattern=r"^n\d+$",
    )
    seconds = time.monotonic() - started
    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    states = {key: str(ti.state) for key, ti in tis.items() if not key[0].startswith("n")}
    assert str(run.state) == "success", (states, seconds)

    def parameters(task_id: str, map_index: int = -1) -> dict[str, Any]:
        manifest = tis[task_id, map_index].xcom_pull(task_ids=task_id, map_indexes=map_index)
        return dict(manifest["parameters"])

    assert parameters("first") == {"epochs": 7, "label": "plain"}  # run conf, then the default
    assert parameters("second") == {"epochs": 7, "label": "from-conf"}  # the edge, the pipeline parameter
    assert [parameters("sweep", i)["epochs"] for i in range(3)] == [4, 5, 6]  # the variants read the conf
    assert parameters("last") == {"size-3": 3}


def test_a_pipeline_of_20000_nodes_is_an_error_dag_and_hides_no_other_project(dags_folder: Path) -> None:
    from tests.conftest import REPO_ROOT

    add_project(dags_folder, "huge", synthetic_yaml(20_000, 80_000))
    add_project(dags_folder, "example", REPO_ROOT / "dags" / "example" / "valohai.yaml")
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    assert {"example__three-trainings", "example__learning-rate-sweep"} <= set(bag.dags)
    error = bag.dags["valohai_error__huge"]
    assert "huge/valohai.yaml:" in error.description and "has 20,000 nodes" in error.description
    assert not any(dag_id.startswith("huge__") for dag_id in bag.dags)
