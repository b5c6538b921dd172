"""Deployment nodes and reuse of unchanged nodes, run for real: dag.test(), the Docker engine, the store.

Whether a container ran is read from the engine's own event log (`docker events`, container
create events carrying our labels), not from anything valohai-airflow reports about itself.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, PYTHON, add_project, dag_bag, pipeline_dag
from tests.support.containers import containers_created
from valohai_airflow.store import LocalStore

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

STORE = LocalStore(AIRFLOW_HOME / "valohai" / "store")


def load_dag(dags_folder: Path, name: str, valohai_yaml: str) -> Any:
    add_project(dags_folder, name, textwrap.dedent(valohai_yaml))
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, name)
    return dag


def run(dag: Any, conf: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any], list[str], float]:
    """One dag.test(): the run, each task's XCom, the containers the engine created, seconds taken."""
    started = time.time()
    result = dag.test(run_conf=conf)
    seconds = time.time() - started
    time.sleep(0.2)  # let the engine's event log catch up
    tis = {ti.task_id: ti for ti in result.get_task_instances()}
    states = {task_id: ti.state for task_id, ti in tis.items()}
    assert states == dict.fromkeys(states, "success"), states
    xcoms = {task_id: ti.xcom_pull(task_ids=task_id) for task_id, ti in tis.items()}
    return result, xcoms, containers_created(dag.dag_id, result.run_id, started - 60), seconds


DEPLOY_YAML = f"""\
- step:
    name: train
    image: {BUSYBOX}
    command: printf weights-v1 > /valohai/outputs/model.pb; echo log > /valohai/outputs/train.log
- step:
    name: check
    image: {BUSYBOX}
    command: echo {{parameters}}
    parameters:
      - {{name: version, type: string}}
      - {{name: deployment, type: string}}
- endpoint:
    name: predict
    image: {PYTHON}
    server-command: python -m http.server 8000
    port: 8000
    files:
      - {{name: model, path: model.pb}}
- pipeline:
    name: p
    nodes:
      - {{name: train, type: execution, step: train}}
      - {{name: deploy, type: deployment, deployment: digits, endpoints: [predict], aliases: [staging]}}
      - {{name: check, type: execution, step: check}}
    edges:
      - [train.output.model.pb, deploy.file.predict.model]
      - [deploy.deployment.version_id, check.parameter.version]
      - [deploy.deployment.id, check.parameter.deployment]
"""


def test_deployment_node_publishes_the_bundle_and_downstream_gets_its_version(dags_folder: Path) -> None:
    dag = load_dag(dags_folder, "dpl-deploy", DEPLOY_YAML)
    _, xcoms, containers, _ = run(dag)
    assert containers == ["check", "train"]  # the deployment node itself runs no container

    deployment = xcoms["deploy"]["deployment"]
    assert deployment["id"] == "digits" and deployment["name"] == "digits"
    prefix = f"deployments/digits/{deployment['version_id']}"
    assert sorted(o.key for o in STORE.list_prefix(prefix)) == [
        f"{prefix}/bundle.json",
        f"{prefix}/endpoints.json",
        f"{prefix}/endpoints/predict/model.pb",
    ]
    assert STORE.read_bytes(f"{prefix}/endpoints/predict/model.pb") == b"weights-v1"
    assert STORE.read_json(f"{prefix}/endpoints.json")["predict"]["server-command"] == [
        "python -m http.server 8000"
    ]
    bundle = STORE.read_json(f"{prefix}/bundle.json")
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", PYTHON],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert bundle["endpoints"]["predict"]["image"] == PYTHON
    assert bundle["endpoints"]["predict"]["image_id"] == image_id
    assert bundle["endpoints"]["predict"]["files"][0]["source"]["node"] == "train"
    assert (
        STORE.read_json("deployments/digits/aliases/staging.json")["version_id"] == deployment["version_id"]
    )

    assert xcoms["check"]["parameters"] == {"version": deployment["version_id"], "deployment": "digits"}


REUSE_YAML = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command: echo {{parameter-value:n}} > /valohai/outputs/n.txt
    parameters:
      - {{name: n, type: integer, default: 1}}
- step:
    name: use
    image: {BUSYBOX}
    command: cat /valohai/inputs/n/n.txt > /valohai/outputs/copy.txt
    inputs:
      - {{name: n}}
- pipeline:
    name: p
    reuse-executions: true
    nodes:
      - {{name: make, type: execution, step: make}}
      - {{name: use, type: execution, step: use}}
    edges:
      - [make.output.n.txt, use.input.n]
"""


def test_reuse_skips_unchanged_nodes_until_a_parameter_changes_or_reuse_is_off(dags_folder: Path) -> None:
    dag = load_dag(dags_folder, "dpl-reuse", REUSE_YAML)
    assert dag.params["valohai.reuse_executions"] is True

    first, xcoms1, containers, seconds1 = run(dag)
    assert containers == ["make", "use"]
    assert xcoms1["make"].get("reused_from") is None

    second, xcoms2, containers, seconds2 = run(dag)
    assert containers == []  # no container started for either node
    for node in ("make", "use"):
        assert xcoms2[node]["reused_from"]["run_id"] == first.run_id
        assert xcoms2[node]["outputs"] == xcoms1[node]["outputs"]  # pointing at the first run's files
        assert xcoms2[node]["execution_id"] == xcoms2[node]["reused_from"]["execution_id"]
    print(f"reuse timings: first run {seconds1:.1f} s, fully reused run {seconds2:.1f} s")

    _, xcoms3, containers, _ = run(dag, {"make.parameter.n": 2})
    assert containers == ["make", "use"]  # a new value, and therefore a new input downstream
    assert xcoms3["make"].get("reused_from") is None and xcoms3["make"]["parameters"] == {"n": 2}
    copy = next(f for f in xcoms3["use"]["outputs"] if f["path"] == "copy.txt")
    assert Path(copy["uri"].removeprefix("file://")).read_text() == "2\n"

    fourth, xcoms4, containers, _ = run(dag, {"valohai.reuse_executions": False})
    assert containers == ["make", "use"]
    assert all(xcoms4[node].get("reused_from") is None for node in ("make", "use"))
    assert second.run_id != fourth.run_id


THREE_YAML = f"""\
- step:
    name: train
    image: {BUSYBOX}
    command: echo {{parameter-value:seed}} > /valohai/outputs/model.txt
    parameters:
      - {{name: seed, type: integer, default: 7}}
- pipeline:
    name: p
    reuse-executions: true
    nodes:
      - {{name: train1, type: execution, step: train}}
      - {{name: train2, type: execution, step: train}}
      - {{name: train3, type: execution, step: train}}
    edges: []
"""


def test_three_identical_nodes_of_one_run_are_three_executions_and_a_later_run_reuses(
    dags_folder: Path,
) -> None:
    """dag.test() runs the nodes one after another: none may reuse a sibling of its own run (Valohai's
    tensorflow-example compares three trainings of one step); the next run reuses all three."""
    dag = load_dag(dags_folder, "dpl-three", THREE_YAML)
    first, xcoms1, containers, _ = run(dag)
    assert containers == ["train1", "train2", "train3"]
    assert all(xcoms1[node].get("reused_from") is None for node in containers)
    assert len({xcoms1[node]["execution_id"] for node in containers}) == 3

    _, xcoms2, containers, _ = run(dag)
    assert containers == []
    for node in ("train1", "train2", "train3"):
        assert xcoms2[node]["reused_from"]["run_id"] == first.run_id


VHIGNORE_YAML = f"""\
- step:
    name: look
    image: {BUSYBOX}
    command:
      - find /valohai/repository | sort > /valohai/outputs/listing.txt
      - test ! -e /valohai/repository/raw-data
- pipeline:
    name: p
    reuse-executions: true
    nodes:
      - {{name: look, type: execution, step: look}}
    edges: []
"""
BIG = 16 * 1024 * 1024


def test_a_vhignored_folder_is_not_in_the_container_nor_in_the_reuse_key(dags_folder: Path) -> None:
    """`.vhignore` keeps a big data folder out of /valohai/repository (the container checks it),
    and changing that folder does not change the reuse key: the next run reuses."""
    project = add_project(
        dags_folder,
        "dpl-vhignore",
        VHIGNORE_YAML,
        {".vhignore": "# the raw data is fetched as an input\nraw-data/\n", "look.sh": "echo hi\n"},
    )
    (project / "raw-data").mkdir()
    (project / "raw-data" / "blob.bin").write_bytes(b"\1" * BIG)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = bag.get_dag("dpl-vhignore__p")

    first, xcoms, containers, _ = run(dag)
    assert containers == ["look"]
    listing = next(f for f in xcoms["look"]["outputs"] if f["path"] == "listing.txt")
    seen = Path(listing["uri"].removeprefix("file://")).read_text().split()
    assert "/valohai/repository/look.sh" in seen and "/valohai/repository/.vhignore" in seen
    assert not [line for line in seen if "raw-data" in line]

    (project / "raw-data" / "blob.bin").write_bytes(b"\2" * BIG)
    (project / "raw-data" / "more.bin").write_bytes(b"\3")
    _, xcoms, containers, _ = run(dag)
    assert containers == []  # the excluded folder changed; the key did not
    assert xcoms["look"]["reused_from"]["run_id"] == first.run_id
