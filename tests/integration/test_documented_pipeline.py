"""Valohai's documented Three-Trainings pipeline (tests/fixtures/shapes/three-trainings.yaml) run end to
end: dag.test(), real containers, the local store. Its self parameter edge must not stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import run_pipeline
from tests.support.cases import SHAPES_DIR
from valohai_airflow.store import LocalStore

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

STORE = LocalStore(AIRFLOW_HOME / "valohai" / "store")
FIXTURE = SHAPES_DIR / "three-trainings.yaml"
PARTS = ("train-images", "train-labels", "test-images", "test-labels")
MODEL = "".join(f"mnist {part}\n" for part in PARTS) + "epochs=5\n"


def test_three_trainings_pipeline_runs_end_to_end(dags_folder: Path) -> None:
    text = FIXTURE.read_text()
    assert BUSYBOX in text
    outcome = run_pipeline(dags_folder, "docs-three", text)
    nodes = [
        "preprocess-node",
        *(f"train{i}-node" for i in (1, 2, 3)),
        *(f"evaluate{i}-node" for i in (1, 2, 3)),
        "find-best-model-node",
        "deploy-node",
    ]
    assert outcome.states == dict.fromkeys(nodes, "success")

    preprocess = outcome.xcom("preprocess-node")
    assert sorted(f["path"] for f in preprocess["outputs"]) == sorted(f"mnist-{p}.gz" for p in PARTS)
    for i in (1, 2, 3):
        train = outcome.xcom(f"train{i}-node")
        # the override cleared the inputs' defaults: each input holds exactly its edge's file
        assert {name: [f["path"] for f in got] for name, got in train["inputs"].items()} == {
            "training-set-images": ["mnist-train-images.gz"],
            "training-set-labels": ["mnist-train-labels.gz"],
            "test-set-images": ["mnist-test-images.gz"],
            "test-set-labels": ["mnist-test-labels.gz"],
        }
        evaluate = outcome.xcom(f"evaluate{i}-node")
        assert [f["path"] for f in evaluate["inputs"]["model"]] == ["model.h5"]
        assert sorted(f["path"] for f in evaluate["outputs"]) == ["model.h5", "predictions.json"]

    best = outcome.xcom("find-best-model-node")
    assert best["parameters"] == {"my_param": "accuracy"}  # the self edge changed nothing
    assert len(best["inputs"]["predictions"]) == 3 and len(best["inputs"]["models"]) == 3
    assert [f["path"] for f in best["outputs"]] == ["model.pb"]

    deployment = outcome.xcom("deploy-node")["deployment"]
    prefix = f"deployments/MyDeployment/{deployment['version_id']}"
    assert STORE.read_bytes(f"{prefix}/endpoints/predict-digit/model.pb") == MODEL.encode()
