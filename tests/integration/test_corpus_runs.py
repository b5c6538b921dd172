"""Shell-only pipelines of the corpus, run unchanged through Airflow and real containers.

Their images (`ubuntu:18.04`, `alpine/alpine`) cannot be pulled here, so the local busybox
image is tagged under those names when nothing of that name exists yet (a real image of that
name, where one is present, runs the same shell commands).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.integration.conftest import BUSYBOX, add_project, dag_bag
from tests.support.seaweed import S3Endpoint

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

TEST1 = "valohai__valohai-utils__tests__test_pipeline_yaml__test1.expected.valohai.yaml"
EDGE_MERGE = "valohai__valohai-yaml__examples__edge-merge-mode.yaml"


@pytest.fixture(scope="module", autouse=True)
def corpus_images() -> None:
    for name in ("ubuntu:18.04", "alpine/alpine"):
        present = subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False)
        if present.returncode != 0:
            subprocess.run(["docker", "tag", BUSYBOX, name], check=True)


def _states(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _manifests(run) -> dict[str, dict]:  # type: ignore[no-untyped-def, type-arg]
    """By task id; a task node's executions as `<task id>[<map index>]`."""
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.xcom_pull(
            task_ids=ti.task_id, map_indexes=ti.map_index
        )
        for ti in run.get_task_instances()
    }


def test_valohai_utils_test1_pipeline(dags_folder: Path, corpus_dir: Path) -> None:
    add_project(dags_folder, "test1", corpus_dir / TEST1)
    dag = dag_bag(dags_folder).dags["test1__mypipeline"]
    run = dag.test()
    assert set(_states(run).values()) == {"success"}
    manifests = _manifests(run)
    extraction = manifests["batch_feature_extraction_1"]
    assert sorted(f["path"] for f in extraction["outputs"]) == ["aaa.md5", "bbb.sha256"]
    assert manifests["train_model_1__variants"] == [{}]  # a task node with no blueprint: one execution
    train = manifests["train_model_1[0]"]
    # `output.a*` selects aaa.md5 only, into both inputs
    assert [f["path"] for f in train["inputs"]["aaa"]] == ["aaa.md5"]
    assert [f["path"] for f in train["inputs"]["bbb"]] == ["aaa.md5"]
    assert train["parameters"] == {"learning_rate": 0.001}
    assert [f["path"] for f in train["outputs"]] == ["model.txt"]
    assert [f["path"] for f in manifests["evaluate_1"]["inputs"]["models"]] == ["model.txt"]


def test_edge_merge_mode_pipeline_with_inputs_from_the_run_conf(dags_folder: Path, corpus_dir: Path) -> None:
    """The file's default input `/step1` is a path on Valohai's side; the run conf gives a real one."""
    add_project(dags_folder, "merge", corpus_dir / EDGE_MERGE)
    data = dags_folder / "merge" / "data.txt"
    data.write_text("buzz\n")
    dag = dag_bag(dags_folder).dags["merge__check-edge-merge-mode"]
    conf = {key: [str(data)] for key in dag.params if key.endswith(".input.dataset")}
    assert len(conf) == 3
    run = dag.test(run_conf=conf)
    assert set(_states(run).values()) == {"success"}
    for manifest in _manifests(run).values():
        assert [f["path"] for f in manifest["inputs"]["dataset"]] == ["data.txt"]


@pytest.fixture
def s3_store(s3_endpoint: S3Endpoint, s3_bucket: str) -> Iterator[str]:
    url = f"s3://{s3_bucket}/runs"
    env = {
        "AIRFLOW__VALOHAI__STORE_URL": url,
        "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
        "AWS_DEFAULT_REGION": s3_endpoint.region,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_the_same_pipeline_through_the_s3_store(
    dags_folder: Path, corpus_dir: Path, s3_store: str, s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    add_project(dags_folder, "test1", corpus_dir / TEST1)
    run = dag_bag(dags_folder).dags["test1__mypipeline"].test()
    assert set(_states(run).values()) == {"success"}
    train = _manifests(run)["train_model_1[0]"]
    (model,) = train["outputs"]
    assert model["uri"].startswith(f"{s3_store}/")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint.endpoint_url,
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    key = model["uri"].removeprefix(f"s3://{s3_bucket}/")
    body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert len(body) == model["size"]
    assert b"/valohai/inputs/aaa/aaa.md5" in body  # the step hashed the files the edge brought
    shutil.rmtree(dags_folder / "test1")
