"""The data catalogue through Airflow (`dag.test()`) and real containers: a run's node writes an output
with a `valohai.alias` sidecar and dataset-version properties in `valohai.metadata.jsonl`; a later run's
node reads `datum://<alias>` and `dataset://{parameter:x}_train/latest` (inputs.json checked); publishing
the same version again fails that node's stage-out, naming the version; an unknown alias fails the node
before its container starts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import STORE, run_pipeline
from valohai_airflow.store import LocalStore
from valohai_airflow.store.catalogue import Catalogue

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PUBLISH = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command: |-
      cd /valohai/outputs
      alias={{parameter-value:alias}}
      version=dataset://{{parameter-value:dataset}}_train/v1
      echo weights > model.bin
      printf '{{"valohai.alias": "%s"}}' "$alias" > model.bin.metadata.json
      mkdir -p train && echo a > train/a.csv && echo bb > train/b.csv
      for f in a b; do
        printf '{{"file": "train/%s.csv", "metadata": {{"valohai.dataset-versions": ["%s"]}}}}\\n' $f "$version"
      done > valohai.metadata.jsonl
    parameters:
      - {{name: alias, type: string, default: production-model}}
      - {{name: dataset, type: string, default: harbor}}
- pipeline:
    name: p
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""

CONSUME = f"""\
- step:
    name: use
    image: {BUSYBOX}
    command:
      - cat /valohai/inputs/model/model.bin /valohai/inputs/train/a.csv /valohai/inputs/train/b.csv > /valohai/outputs/read.txt
      - cp /valohai/config/inputs.json /valohai/outputs/inputs.json
    parameters:
      - {{name: dataset, type: string, default: harbor}}
    inputs:
      - {{name: model, default: "datum://production-model"}}
      - {{name: train, default: "dataset://{{parameter:dataset}}_train/latest"}}
- pipeline:
    name: p
    nodes:
      - {{name: use, type: execution, step: use}}
    edges: []
"""


def stored(uri: str) -> bytes:
    return Path(uri.removeprefix("file://")).read_bytes()


def test_a_later_run_reads_the_alias_and_dataset_an_earlier_run_published(dags_folder: Path) -> None:
    tag = uuid.uuid4().hex[:8]  # the session's store is shared: names of our own
    alias, dataset = f"model-{tag}", f"ds{tag}"
    published = run_pipeline(
        dags_folder,
        "cat-publish",
        PUBLISH,
        conf={"make.parameter.alias": alias, "make.parameter.dataset": dataset},
    )
    assert published.states == {"make": "success"}
    catalogue = Catalogue(LocalStore(STORE))
    made = published.xcom("make")
    (model_out,) = [o for o in made["outputs"] if o["path"] == "model.bin"]
    assert catalogue.resolve(f"datum://{alias}")[0].uri == model_out["uri"]
    event = catalogue.alias_history(alias)[0]
    assert (event.producer.node, event.producer.execution_id) == ("make", made["execution_id"])
    assert event.producer.dag_id == "cat-publish__p"

    consumed = run_pipeline(
        dags_folder,
        "cat-consume",
        CONSUME,
        conf={"use.input.model": [f"datum://{alias}"], "use.parameter.dataset": dataset},
    )
    assert consumed.states == {"use": "success"}, consumed.errors("use")
    used = consumed.xcom("use")
    outputs = {o["path"]: o["uri"] for o in used["outputs"]}
    assert stored(outputs["read.txt"]) == b"weights\na\nbb\n"
    inputs = json.loads(stored(outputs["inputs.json"]))
    (model,) = inputs["model"]["files"]
    assert model["path"] == "/valohai/inputs/model/model.bin" and model["uri"] == model_out["uri"]
    assert model["checksums"]["sha256"] == model_out["sha256"] and model["datum_id"]
    assert model["metadata"] == [{"valohai.alias": alias}]
    train = {f["name"]: f for f in inputs["train"]["files"]}
    assert sorted(train) == ["a.csv", "b.csv"] and all(f["datum_id"] for f in train.values())

    again = run_pipeline(
        dags_folder,
        "cat-again",
        PUBLISH,
        conf={"make.parameter.alias": alias, "make.parameter.dataset": dataset},
    )
    assert again.states == {"make": "failed"}
    (error,) = again.errors("make")
    assert f"dataset version dataset://{dataset}_train/v1 exists already" in error, error
    assert len(catalogue.alias_history(alias)) == 1  # the refused try published nothing


def test_an_unknown_alias_fails_the_node_before_its_container(dags_folder: Path) -> None:
    outcome = run_pipeline(
        dags_folder,
        "cat-unknown",
        CONSUME,
        conf={"use.input.model": ["datum://no-such-alias-anywhere"]},
    )
    assert outcome.states == {"use": "failed"}
    (error,) = outcome.errors("use")
    assert "node 'use': input 'model': datum://no-such-alias-anywhere: no datum alias" in error, error
    assert outcome.xcom("use") is None
