"""Valohai pipelines and steps in hand-written DAGs (dags/valohai_in_your_dag.py), run for real:
Airflow's dag.test() and the example project's steps in real containers."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import dag_bag
from tests.integration.test_node_pages import client, token
from tests.support.executions_table import column

__all__ = ["client", "token"]  # the node pages' fixtures: Airflow's API app with the provider's plugin

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")


def _bag(dags_folder: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(REPO_ROOT / "dags" / "example", dags_folder / "example")
    shutil.copy(REPO_ROOT / "dags" / "valohai_in_your_dag.py", dags_folder / "valohai_in_your_dag.py")
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    return bag


def test_a_pipeline_group_between_a_check_and_a_notification(dags_folder: Path) -> None:
    run = _bag(dags_folder).dags["valohai_checked_three_trainings"].test()
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert {t: str(ti.state) for t, ti in tis.items()} == dict.fromkeys(tis, "success")
    assert tis["announce"].xcom_pull(task_ids="announce") == f"three-trainings finished in run {run.run_id}"
    train = tis["three_trainings.train-fast"].xcom_pull(task_ids="three_trainings.train-fast")
    assert (
        train["parameters"]["learning_rate"] == 1.0 and train["parameters"]["features"] == 2
    )  # metadata edge
    assert [f["path"] for f in train["inputs"]["dataset"]] == ["train.npz"]  # found under the group prefix
    best = tis["three_trainings.pick-best"].xcom_pull(task_ids="three_trainings.pick-best")
    assert sorted(f["path"] for f in best["inputs"]["models"]) == [
        "model-lr0.01.npz",
        "model-lr0.1.npz",
        "model-lr1.0.npz",
    ]
    assert [f["path"] for f in best["outputs"]] == ["best-model.npz"]


def test_a_mapped_chain_per_item_then_one_node_over_all(dags_folder: Path, client: Any, token: str) -> None:
    run = (
        _bag(dags_folder).dags["valohai_learning_rate_chains"].test(run_conf={"learning_rates": [0.05, 0.5]})
    )
    tis = run.get_task_instances()
    assert {str(ti.state) for ti in tis} == {"success"}, [(ti.task_id, ti.map_index, ti.state) for ti in tis]
    trains = sorted((ti for ti in tis if ti.task_id == "chain.train"), key=lambda ti: ti.map_index)
    assert [ti.map_index for ti in trains] == [0, 1]  # two chains
    manifests = [ti.xcom_pull(task_ids="chain.train", map_indexes=ti.map_index) for ti in trains]
    assert [m["parameters"] for m in manifests] == [
        {"learning_rate": 0.05, "epochs": 20, "features": 2},
        {"learning_rate": 0.5, "epochs": 20, "features": 2},
    ]
    preprocesses = [trains[0].xcom_pull(task_ids="chain.preprocess", map_indexes=i) for i in (0, 1)]
    for i, manifest in enumerate(manifests):  # each train read its own chain's preprocess output
        (dataset,) = manifest["inputs"]["dataset"]
        wanted = next(f for f in preprocesses[i]["outputs"] if f["path"] == "train.npz")
        assert dataset["sha256"] == wanted["sha256"]
        assert manifest["execution_id"] != manifests[1 - i]["execution_id"]
    compare = next(ti for ti in tis if ti.task_id == "compare")
    final = compare.xcom_pull(task_ids="compare")
    assert sorted(f["path"] for f in final["inputs"]["models"]) == ["model-lr0.05.npz", "model-lr0.5.npz"]
    assert [f["path"] for f in final["outputs"]] == ["best-model.npz"]
    # the same links as a generated node: the Outputs page of one mapped train, by its prefixed task id
    link = trains[1].xcom_pull(task_ids="chain.train", map_indexes=1, key="_link_ValohaiOutputsLink")
    assert link.endswith(f"/chain.train/1/{trains[1].try_number}")
    client.cookies.set("_token", token)
    try:
        page = client.get(link)
        executions = client.get("/valohai/executions/valohai_learning_rate_chains?task=chain.train")
    finally:
        client.cookies.clear()
    assert page.status_code == 200, page.text
    assert "model-lr0.5.npz" in page.text and "model-lr0.05.npz" not in page.text
    # the step operator's executions are on the DAG's Executions page, each with its parameters
    assert executions.status_code == 200, executions.text
    assert sorted(column(executions.text, "parameter.learning_rate")) == ["0.05", "0.5"]
    assert column(executions.text, "status") == ["completed", "completed"]
