"""Deployment bundles in a real LocalStore: layout, contents, pointers, errors, and deployment edges."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.bundles import DeploymentError, DeploymentRequest, publish, version_id
from valohai_airflow.runtime.edge_resolution import resolve_edges
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.manifest import Manifest, ManifestFile, load_manifest
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: train
    image: busybox
    command: date
- step:
    name: check
    image: busybox
    command: echo {parameters}
    parameters:
      - {name: version, type: string}
      - {name: deployment, type: string}
- endpoint:
    name: predict-digit
    image: python:3.11
    server-command: python serve.py
    port: 8000
    files:
      - {name: model, path: models/model.pb, description: the weights}
- pipeline:
    name: p
    nodes:
      - {name: train, type: execution, step: train}
      - name: deploy
        type: deployment
        deployment: My Deployment
        endpoints: [predict-digit]
        aliases: [staging]
      - {name: check, type: execution, step: check}
    edges:
      - [train.output.%s, deploy.file.predict-digit.model]
      - [deploy.deployment.version_id, check.parameter.version]
      - [deploy.deployment.id, check.parameter.deployment]
"""

NOW = datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)
KEY = ExecutionKey("proj__p", "manual__1", "deploy")


def pipeline(glob: str = "model.pb") -> PipelinePlan:
    return compile_text(YAML % glob).pipelines[0]


def train_manifest(store: LocalStore, files: dict[str, bytes]) -> dict[str, Any]:
    outputs = []
    for path, data in files.items():
        stored = store.put_bytes(data, f"proj__p/manual__1/train/-1/1/outputs/{path}")
        outputs.append(
            ManifestFile(path=path, uri=stored.uri, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        )
    return Manifest(
        execution_id="e1", node="train", step="train", image="busybox", outputs=outputs
    ).model_dump(mode="json")


def request(
    store: LocalStore, plan: PipelinePlan, upstream: dict[str, Any], **extra: Any
) -> DeploymentRequest:
    return DeploymentRequest(
        key=KEY,
        project_name="proj",
        pipeline=plan,
        node=plan.node("deploy"),
        upstream=upstream,
        stores=StoreResolver(store),
        image_ids={"python:3.11": "sha256:abc"},
        now=NOW,
        **extra,
    )


def test_bundle_layout_contents_and_pointers(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = pipeline()
    upstream = {"train": train_manifest(store, {"model.pb": b"weights", "other.txt": b"x"})}
    result = publish(request(store, plan, upstream))

    version = version_id(KEY, NOW)
    assert version == f"20261123.010203-{KEY.execution_id[:8]}"
    prefix = "deployments/My_Deployment-" + hashlib.sha256(b"My Deployment").hexdigest()[:8] + f"/{version}"
    keys = [o.key for o in store.list_prefix("deployments")]
    root = prefix.split("/")[1]
    assert keys == sorted(
        [
            f"{prefix}/bundle.json",
            f"{prefix}/endpoints.json",
            f"{prefix}/endpoints/predict-digit/models/model.pb",
            f"deployments/{root}/aliases/staging.json",
            f"deployments/{root}/latest.json",
        ]
    )
    assert store.read_bytes(f"{prefix}/endpoints/predict-digit/models/model.pb") == b"weights"
    definitions = store.read_json(f"{prefix}/endpoints.json")
    assert definitions["predict-digit"]["server-command"] == ["python serve.py"]
    assert definitions["predict-digit"]["files"] == [
        {"name": "model", "path": "models/model.pb", "description": "the weights"}
    ]
    bundle = store.read_json(f"{prefix}/bundle.json")
    assert (
        bundle["deployment"] == "My Deployment" and bundle["version_id"] == version and bundle["id"] == root
    )
    assert bundle["aliases"] == ["staging"] and bundle["run_id"] == "manual__1"
    endpoint = bundle["endpoints"]["predict-digit"]
    assert endpoint["image"] == "python:3.11" and endpoint["image_id"] == "sha256:abc"
    (file,) = endpoint["files"]
    assert file["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert file["source"]["node"] == "train" and file["source"]["path"] == "model.pb"
    pointer = {"id": root, "version_id": version, "bundle_uri": store.uri(f"{prefix}/bundle.json")}
    assert store.read_json(f"deployments/{root}/latest.json") == pointer
    assert store.read_json(f"deployments/{root}/aliases/staging.json") == pointer

    manifest = load_manifest(result, StoreResolver(store))
    assert manifest.deployment == {
        "id": root,
        "version_id": version,
        "name": "My Deployment",
        "bundle_uri": pointer["bundle_uri"],
    }
    assert [f.path for f in manifest.inputs["predict-digit.model"]] == ["models/model.pb"]
    json.dumps(result)  # a plain XCom value


def test_deployment_edges_give_id_and_version_to_parameters(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = pipeline()
    result = publish(request(store, plan, {"train": train_manifest(store, {"model.pb": b"w"})}))
    values = resolve_edges(plan, plan.node("check"), {"deploy": [load_manifest(result)]})
    assert values.parameters == {
        "version": result["deployment"]["version_id"],
        "deployment": result["deployment"]["id"],
    }


def test_a_retry_publishes_a_new_version_and_moves_latest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = pipeline()
    upstream = {"train": train_manifest(store, {"model.pb": b"w"})}
    first = publish(request(store, plan, upstream))
    second = publish(
        DeploymentRequest(
            key=ExecutionKey("proj__p", "manual__1", "deploy", try_number=2),
            project_name="proj",
            pipeline=plan,
            node=plan.node("deploy"),
            upstream=upstream,
            stores=StoreResolver(store),
            now=NOW,
        )
    )
    assert first["deployment"]["version_id"] != second["deployment"]["version_id"]
    root = first["deployment"]["id"]
    assert (
        store.read_json(f"deployments/{root}/latest.json")["version_id"] == second["deployment"]["version_id"]
    )
    assert len([o for o in store.list_prefix("deployments") if o.key.endswith("bundle.json")]) == 2


@pytest.mark.parametrize(
    ("glob", "files", "expected"),
    [
        ("model.pb", {"other.txt": b"x"}, "matched 0 (none)"),
        ("*.pb", {"a.pb": b"1", "b.pb": b"2"}, "matched 2 (a.pb, b.pb)"),
    ],
)
def test_an_endpoint_file_needs_exactly_one_match_and_nothing_is_written(
    tmp_path: Path, glob: str, files: dict[str, bytes], expected: str
) -> None:
    store = LocalStore(tmp_path / "store")
    plan = pipeline(glob)
    with pytest.raises(
        DeploymentError, match=r"exactly one file.*" + expected.replace("(", r"\(").replace(")", r"\)")
    ):
        publish(request(store, plan, {"train": train_manifest(store, files)}))
    assert store.list_prefix("deployments") == []


def test_missing_upstream_and_changed_file_are_errors(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    plan = pipeline()
    with pytest.raises(DeploymentError, match="no manifest from 'train'"):
        publish(request(store, plan, {}))
    upstream = train_manifest(store, {"model.pb": b"w"})
    store.put_bytes(b"tampered", "proj__p/manual__1/train/-1/1/outputs/model.pb")
    with pytest.raises(DeploymentError, match="changed since train stored it"):
        publish(request(store, plan, {"train": upstream}))
    assert [o.key for o in store.list_prefix("deployments")] == []


def test_an_endpoint_file_without_an_edge_is_an_error(tmp_path: Path) -> None:
    text = (YAML % "model.pb").replace(
        "      - [train.output.model.pb, deploy.file.predict-digit.model]\n", ""
    )
    plan = compile_text(text).pipelines[0]
    store = LocalStore(tmp_path / "store")
    with pytest.raises(DeploymentError, match="needs its file 'model', but no edge brings it"):
        publish(request(store, plan, {}))
