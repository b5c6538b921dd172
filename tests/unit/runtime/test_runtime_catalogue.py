"""The catalogue at run time over real work dirs and a LocalStore (no Docker: the test writes what a
step would leave in /valohai/outputs): a finished try publishes its sidecar aliases, dataset and model
versions; a later node resolves datum://, dataset:// and model:// inputs (inputs.json with datum ids and
checksums) and `{parameter:x}` in URLs; unknown references and existing versions are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.runtime.execution import (
    ExecutionError,
    ExecutionRequest,
    PreparedExecution,
    finish,
    prepare,
)
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.input_urls import InputUrlError, interpolate_url
from valohai_airflow.runtime.inputs import DownloadCache
from valohai_airflow.runtime.manifest import Manifest, stored_manifest
from valohai_airflow.store import LocalStore
from valohai_airflow.store.base import StoredObject, StoreError
from valohai_airflow.store.catalogue import Catalogue
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: train
    image: busybox
    command: "true"
- step:
    name: use
    image: busybox
    command: "true"
    parameters:
      - {name: which, type: string, default: v1}
    inputs:
      - {name: model, default: "datum://production-model"}
      - {name: data, default: "dataset://images/{parameter:which}"}
      - {name: latest, default: "dataset://images/latest", keep-directories: full}
      - {name: weights, default: "model://churn/latest", optional: true}
- pipeline:
    name: p
    nodes:
      - {name: train, type: execution, step: train}
      - {name: use, type: execution, step: use}
    edges: []
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Any]:
    project = tmp_path / "proj"
    project.mkdir()
    return {
        "plan": compile_text(YAML).pipelines[0],
        "project": project,
        "store": LocalStore(tmp_path / "store"),
        "tmp": tmp_path,
    }


def prepared(
    env: dict[str, Any], node: str, run_id: str, conf: dict[str, Any] | None = None
) -> PreparedExecution:
    plan = env["plan"]
    return prepare(
        ExecutionRequest(
            key=ExecutionKey("proj__p", run_id, node),
            project_name="proj",
            project_root=env["project"],
            pipeline=plan,
            node=plan.node(node),
            conf=conf or {},
            upstream={},
            stores=StoreResolver(env["store"]),
            work_base=env["tmp"] / "work",
            cache=DownloadCache(env["tmp"] / "cache"),
        )
    )


def run_train(
    env: dict[str, Any], run_id: str, files: dict[str, bytes], properties: dict[str, Any]
) -> PreparedExecution:
    """Prepare `train`, leave `files` and their sidecars as the step would, and finish it."""
    done = prepared(env, "train", run_id)
    for name, data in files.items():
        path = done.workdir.outputs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if name in properties:
            Path(f"{path}.metadata.json").write_text(json.dumps(properties[name]))
    finish(done, exit_code=0, log_lines=[], status="completed")
    return done


def test_a_later_run_reads_what_an_earlier_one_published(env: dict[str, Any]) -> None:
    first = run_train(
        env,
        "run1",
        {"model.bin": b"weights-1", "images/a.png": b"A", "images/b.png": b"B"},
        {
            "model.bin": {"valohai.alias": "production-model", "valohai.model-versions": ["model://churn/"]},
            "images/a.png": {"valohai.dataset-versions": ["dataset://images/v1"], "label": "cat"},
            "images/b.png": {
                "valohai.dataset-versions": [{"uri": "dataset://images/v1", "targeting_aliases": ["prod"]}]
            },
        },
    )
    assert "datum alias datum://production-model now points at model.bin (change 1)" in first.log
    assert "created dataset version dataset://images/v1 with 2 file(s)" in first.log
    run_train(
        env,
        "run2",
        {"more/c.png": b"C"},
        {
            "more/c.png": {
                "valohai.dataset-versions": [{"uri": "dataset://images/v2", "from": "dataset://images/v1"}]
            }
        },
    )

    use = prepared(env, "use", "run3")
    inputs = json.loads((use.workdir.config / "inputs.json").read_text())
    model = inputs["model"]["files"]
    assert [(f["name"], f["path"], f["size"]) for f in model] == [
        ("model.bin", "/valohai/inputs/model/model.bin", 9)
    ]
    assert model[0]["datum_id"] and model[0]["checksums"]["sha256"]
    assert model[0]["metadata"][0]["valohai.alias"] == "production-model"
    assert (use.workdir.inputs / "model" / "model.bin").read_bytes() == b"weights-1"
    # {parameter:which} = v1: the two files of v1, flat (keep-directories none)
    assert sorted(f["name"] for f in inputs["data"]["files"]) == ["a.png", "b.png"]
    assert {f["name"]: f["metadata"] for f in inputs["data"]["files"]}["a.png"][0]["label"] == "cat"
    # latest is v2: v1's files and the new one, under their output paths (keep-directories full)
    assert sorted(f["name"] for f in inputs["latest"]["files"]) == [
        "images/a.png",
        "images/b.png",
        "more/c.png",
    ]
    assert (use.workdir.inputs / "latest" / "more" / "c.png").read_bytes() == b"C"
    assert [f["name"] for f in inputs["weights"]["files"]] == ["model.bin"]

    # the run conf picks another version through the parameter; an alias moved by a later run is followed
    again = prepared(env, "use", "run4", {"use.parameter.which": "prod"})
    assert len(json.loads((again.workdir.config / "inputs.json").read_text())["data"]["files"]) == 2


def test_the_manifest_says_what_each_output_became_and_where_each_input_came_from(
    env: dict[str, Any],
) -> None:
    first = run_train(
        env,
        "run1",
        {"model.bin": b"weights-1", "images/a.png": b"A", "notes.txt": b"n"},
        {
            "model.bin": {"valohai.alias": "production-model", "valohai.model-versions": ["model://churn/"]},
            "images/a.png": {
                "valohai.dataset-versions": [{"uri": "dataset://images/v1", "targeting_aliases": ["prod"]}]
            },
        },
    )
    run_train(
        env,
        "run2",
        {"b.png": b"B"},
        {
            "b.png": {
                "valohai.dataset-versions": [{"uri": "dataset://images/v2", "from": "dataset://images/v1"}]
            }
        },
    )
    store = env["store"]
    key = ExecutionKey("proj__p", "run1", "train")
    stored = Manifest.model_validate(stored_manifest(store, key))
    outputs = {f.path: f for f in stored.outputs}
    assert outputs["model.bin"].catalogue == ["datum://production-model", "model://churn/1"]
    assert outputs["images/a.png"].catalogue == ["dataset://images/v1"]
    assert outputs["notes.txt"].catalogue == [] and outputs["notes.txt"].datum_id is None
    catalogue = Catalogue(store)
    assert outputs["model.bin"].datum_id == catalogue.resolve("datum://production-model")[0].datum_id
    assert [r.reference for r in first.published] == [
        "dataset://images/v1",
        "datum://production-model",
        "model://churn/1",
    ]

    use = prepared(env, "use", "run3", {"use.parameter.which": "prod"})
    finish(use, exit_code=0, log_lines=[], status="completed")
    used = Manifest.model_validate(stored_manifest(store, ExecutionKey("proj__p", "run3", "use")))
    by_input = {name: {f.path: f for f in files} for name, files in used.inputs.items()}
    assert by_input["model"]["model.bin"].catalogue == ["datum://production-model"]
    assert by_input["model"]["model.bin"].datum_id == outputs["model.bin"].datum_id
    assert by_input["data"]["a.png"].catalogue == ["dataset://images/prod", "dataset://images/v1"]
    # latest is v2, whose a.png came from v1 (run1's datum) and b.png from run2
    assert {p: f.catalogue for p, f in by_input["latest"].items()} == {
        "images/a.png": ["dataset://images/latest", "dataset://images/v2"],
        "b.png": ["dataset://images/latest", "dataset://images/v2"],
    }
    assert by_input["latest"]["images/a.png"].datum_id == outputs["images/a.png"].datum_id
    assert by_input["weights"]["model.bin"].catalogue == ["model://churn/latest", "model://churn/1"]
    # an old manifest (schema 2) reads as files without lineage
    old = {k: v for k, v in stored.model_dump(mode="json").items()}
    old["schema_version"] = 2
    old["outputs"] = [
        {k: v for k, v in f.items() if k not in ("datum_id", "catalogue")} for f in old["outputs"]
    ]
    assert all(f.catalogue == [] for f in Manifest.model_validate(old).outputs)


class SecondManifestWriteFails(LocalStore):
    """A store whose second write of a manifest.json fails: a store failing between two writes of one
    try cannot be made to happen on demand with a real store, so this one write is made to fail."""

    manifest_writes = 0

    def put_json(self, obj: Any, key: str) -> StoredObject:
        if key.endswith("/manifest.json"):
            self.manifest_writes += 1
            if self.manifest_writes == 2:
                raise StoreError("the disk is full")
        return super().put_json(obj, key)


def test_the_published_try_stands_when_its_manifest_cannot_be_stored_again(env: dict[str, Any]) -> None:
    env["store"] = SecondManifestWriteFails(env["tmp"] / "failing-store")
    done = prepared(env, "train", "run1")
    (done.workdir.outputs / "m.bin").write_bytes(b"m")
    (done.workdir.outputs / "m.bin.metadata.json").write_text(json.dumps({"valohai.alias": "best"}))
    value = finish(done, exit_code=0, log_lines=[], status="completed")
    assert value["outputs"][0]["catalogue"] == ["datum://best"]  # the XCom says it
    stored = stored_manifest(env["store"], ExecutionKey("proj__p", "run1", "train"))
    assert stored is not None and stored["outputs"][0].get("catalogue") in (None, [])  # the first one stands
    assert Catalogue(env["store"]).resolve("datum://best")[0].uri == value["outputs"][0]["uri"]
    assert any("the stored manifest does not say so" in line and "disk is full" in line for line in done.log)


def test_an_unknown_reference_fails_the_node_before_it_starts(env: dict[str, Any]) -> None:
    run_train(env, "run1", {"m.bin": b"m"}, {"m.bin": {"valohai.alias": "production-mode1"}})
    with pytest.raises(ExecutionError) as raised:
        prepared(env, "use", "run2")
    message = str(raised.value)
    assert message.startswith("node 'use': input 'model': datum://production-model: no datum alias"), message
    assert "did you mean production-mode1?" in message


def test_an_existing_dataset_version_fails_the_stage_out_naming_it(env: dict[str, Any]) -> None:
    props = {"a.csv": {"valohai.dataset-versions": ["dataset://images/v1"]}}
    run_train(env, "run1", {"a.csv": b"1"}, props)
    with pytest.raises(
        ExecutionError, match=r"node 'train': .*dataset version dataset://images/v1 exists already"
    ):
        run_train(env, "run2", {"a.csv": b"2"}, props)
    store = env["store"]
    assert not store.list_prefix("proj__p/run2")  # the refused try keeps nothing
    assert Catalogue(store).resolve("dataset://images/v1")[0].size == 1


def test_a_failed_try_publishes_nothing(env: dict[str, Any]) -> None:
    done = prepared(env, "train", "run1")
    (done.workdir.outputs / "m.bin").write_bytes(b"m")
    (done.workdir.outputs / "m.bin.metadata.json").write_text(json.dumps({"valohai.alias": "best"}))
    finish(done, exit_code=1, log_lines=[], status="failed")
    assert Catalogue(env["store"]).entries() == []


def test_a_malformed_alias_is_refused_naming_the_file(env: dict[str, Any]) -> None:
    with pytest.raises(ExecutionError, match=r"output 'm.bin': valohai.alias must be one string"):
        run_train(env, "run1", {"m.bin": b"m"}, {"m.bin": {"valohai.alias": ["a", "b"]}})


def test_parameters_fill_input_urls() -> None:
    params = {"user": "u-1", "on": True, "n": 3, "many": ["a", "b"], "unset": None}
    url = "s3://b/{parameter:user}/{parameter-value:n}/{parameter:on}/{other}*.csv"
    assert interpolate_url(url, params) == "s3://b/u-1/3/true/{other}*.csv"
    for bad, why in [
        ("{parameter:nope}", "names no parameter"),
        ("{parameter:many}", "is a list"),
        ("{parameter:unset}", "has no value"),
    ]:
        with pytest.raises(InputUrlError, match=why):
            interpolate_url(bad, params)
