"""The example project of dags/ run end to end through Airflow's dag.test() and real containers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import dag_bag

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")


def test_three_trainings_pipeline(dags_folder: Path) -> None:
    shutil.copytree(REPO_ROOT / "dags" / "example", dags_folder / "example")
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = bag.dags["example__three-trainings"]
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(states, "success"), states
    ti = {t.task_id: t for t in run.get_task_instances()}

    preprocess = ti["preprocess"].xcom_pull(task_ids="preprocess")
    assert {f["path"] for f in preprocess["outputs"]} == {"train.npz", "test.npz"}
    assert preprocess["metadata"]["features"] == 2

    train = ti["train-fast"].xcom_pull(task_ids="train-fast")
    assert train["parameters"] == {"learning_rate": 1.0, "epochs": 50, "features": 2}  # metadata edge
    assert [f["path"] for f in train["inputs"]["dataset"]] == ["train.npz"]
    (model,) = train["outputs"]
    assert model["path"] == "model-lr1.0.npz" and model["properties"]["learning_rate"] == 1.0
    assert Path(model["uri"].removeprefix("file://")).stat().st_size == model["size"]

    best = ti["pick-best"].xcom_pull(task_ids="pick-best")
    assert sorted(f["path"] for f in best["inputs"]["models"]) == [
        "model-lr0.01.npz",
        "model-lr0.1.npz",
        "model-lr1.0.npz",
    ]  # input → input edges
    assert len(best["inputs"]["predictions"]) == 3  # three output globs into one input
    assert [f["path"] for f in best["outputs"]] == ["best-model.npz"]
    assert 0.5 < best["metadata"]["best_accuracy"] <= 1.0


def test_learning_rate_sweep_pipeline(dags_folder: Path) -> None:
    """The example's task node: one training per learning rate of its blueprint, all compared."""
    shutil.copytree(REPO_ROOT / "dags" / "example", dags_folder / "example")
    dag = dag_bag(dags_folder).dags["example__learning-rate-sweep"]
    run = dag.test()
    tis = run.get_task_instances()
    assert {str(ti.state) for ti in tis} == {"success"}, [(ti.task_id, ti.map_index, ti.state) for ti in tis]
    trainings = sorted((ti for ti in tis if ti.task_id == "train"), key=lambda ti: ti.map_index)
    assert [ti.rendered_map_index for ti in trainings] == [
        "learning_rate=0.01",
        "learning_rate=0.1",
        "learning_rate=1.0",
    ]
    compare = next(ti for ti in tis if ti.task_id == "compare").xcom_pull(task_ids="compare")
    assert [f["path"] for f in compare["inputs"]["models"]] == [
        "model-lr0.01.npz",
        "model-lr0.1.npz",
        "model-lr1.0.npz",
    ]
    assert compare["metadata"]["best_model"] in {f["path"] for f in compare["inputs"]["models"]}
    assert 0.5 < compare["metadata"]["best_accuracy"] <= 1.0
    assert [f["path"] for f in compare["outputs"]] == ["best-model.npz"]
