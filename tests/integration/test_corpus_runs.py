"""Shell-only pipelines, run unchanged through Airflow and real containers: our shape fixture of the
pipeline `vh yaml pipeline` generates (and the corpus file it reproduces, when the corpus is here),
and valohai-yaml's `examples/edge-merge-mode.yaml`.

Their images (`ubuntu:18.04`, `alpine/alpine`) cannot be pulled here, so the local busybox
image is tagged under those names when nothing of that name exists yet (a real image of that
name, where one is present, runs the same shell commands).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.integration.conftest import BUSYBOX, add_project, dag_bag
from tests.support import cases
from tests.support.cases import Case, Files
from tests.support.seaweed import S3Endpoint

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

EDGE_MERGE = Case(cases.UPSTREAM, "examples/edge-merge-mode.yaml")


@dataclass(frozen=True)
class ShellPipeline:
    """What one run of the generated-shape pipeline must give: its names and the files it moves."""

    pipeline: str
    first: str  # writes two files
    task: str  # the task node without a blueprint: `output.a*` into both its inputs
    last: str  # gets the task's outputs
    written: list[str]
    selected: str
    inputs: tuple[str, str]
    parameters: dict[str, float]
    made: str
    last_input: str
    hashed: bytes  # what the task's output file says it read


SHELL = cases.rows(
    (
        Case(cases.SHAPES, "shell-pipeline.yaml"),
        ShellPipeline(
            "shell",
            "write_1",
            "fold_1",
            "list_1",
            ["alpha.txt", "beta.txt"],
            "alpha.txt",
            ("left", "right"),
            {"rate": 0.25},
            "folded.txt",
            "listing",
            b"/valohai/inputs/left/alpha.txt",
        ),
    ),
    (
        Case(cases.CORPUS, "valohai__valohai-utils__tests__test_pipeline_yaml__test1.expected.valohai.yaml"),
        ShellPipeline(
            "mypipeline",
            "batch_feature_extraction_1",
            "train_model_1",
            "evaluate_1",
            ["aaa.md5", "bbb.sha256"],
            "aaa.md5",
            ("aaa", "bbb"),
            {"learning_rate": 0.001},
            "model.txt",
            "models",
            b"/valohai/inputs/aaa/aaa.md5",
        ),
    ),
)


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


@pytest.mark.parametrize(("case", "shell"), SHELL)
def test_generated_shape_pipeline(dags_folder: Path, files: Files, case: Case, shell: ShellPipeline) -> None:
    add_project(dags_folder, "gen", files.path(case))
    dag = dag_bag(dags_folder).dags[f"gen__{shell.pipeline}"]
    run = dag.test()
    assert set(_states(run).values()) == {"success"}
    manifests = _manifests(run)
    first = manifests[shell.first]
    assert sorted(f["path"] for f in first["outputs"]) == shell.written
    assert manifests[f"{shell.task}__variants"] == [{}]  # a task node with no blueprint: one execution
    task = manifests[f"{shell.task}[0]"]
    # `output.a*` selects one file only, into both inputs
    for name in shell.inputs:
        assert [f["path"] for f in task["inputs"][name]] == [shell.selected]
    assert task["parameters"] == shell.parameters
    assert [f["path"] for f in task["outputs"]] == [shell.made]
    assert [f["path"] for f in manifests[shell.last]["inputs"][shell.last_input]] == [shell.made]


def test_edge_merge_mode_pipeline_with_inputs_from_the_run_conf(dags_folder: Path, files: Files) -> None:
    """The file's default input `/step1` is a path on Valohai's side; the run conf gives a real one."""
    add_project(dags_folder, "merge", files.path(EDGE_MERGE))
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


@pytest.mark.parametrize(("case", "shell"), SHELL)
def test_the_same_pipeline_through_the_s3_store(
    dags_folder: Path,
    files: Files,
    case: Case,
    shell: ShellPipeline,
    s3_store: str,
    s3_endpoint: S3Endpoint,
    s3_bucket: str,
) -> None:
    add_project(dags_folder, "gen", files.path(case))
    run = dag_bag(dags_folder).dags[f"gen__{shell.pipeline}"].test()
    assert set(_states(run).values()) == {"success"}
    task = _manifests(run)[f"{shell.task}[0]"]
    (model,) = task["outputs"]
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
    assert shell.hashed in body  # the step read the files the edge brought
    shutil.rmtree(dags_folder / "gen")
