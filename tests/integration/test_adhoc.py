"""Ad hoc code for real: dag.test(), the Docker engine and the store. The dags folder holds the
deployed project; the run conf names a snapshot of a modified copy (runtime/adhoc.py), whose code
the node runs and whose identifier `execution.json` shows. A corrupt snapshot, or one that changes
the node's step, fails the node before any container is created (read from `docker events`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import STORE, Outcome, run_pipeline
from tests.support.containers import containers_created
from valohai_airflow.plan.conf_keys import ADHOC_KEY
from valohai_airflow.runtime.adhoc import send_working_tree
from valohai_airflow.store import LocalStore

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

NAME = "adhoc-code"
COMMAND = "sh hello.sh > /valohai/outputs/said.txt; cp /valohai/config/execution.json /valohai/outputs/"
YAML = f"""\
- step:
    name: hello
    image: {BUSYBOX}
    command: {json.dumps(COMMAND)}
- pipeline:
    name: p
    nodes:
      - {{name: only, type: execution, step: hello}}
    edges: []
"""
DEPLOYED = {"hello.sh": "echo deployed code\n"}


def modified_copy(tmp_path: Path, yaml: str = YAML) -> Path:
    root = tmp_path / "working-tree"
    root.mkdir()
    (root / "valohai.yaml").write_text(yaml)
    (root / "hello.sh").write_text("echo changed in the working tree\n")
    return root


def run(dags_folder: Path, conf: dict[str, Any] | None) -> Outcome:
    shutil.rmtree(dags_folder / NAME, ignore_errors=True)  # run_pipeline adds the project each time
    started = time.time()
    outcome = run_pipeline(dags_folder, NAME, YAML, conf=conf, files=DEPLOYED)
    time.sleep(0.2)  # let the engine's event log catch up
    outcome.created = containers_created(outcome.run.dag_id, outcome.run.run_id, started - 60)  # type: ignore[attr-defined]
    return outcome


def output(outcome: Outcome, path: str) -> str:
    (file,) = [o for o in outcome.xcom("only")["outputs"] if o["path"] == path]
    store = LocalStore(STORE)
    key = store.key_for_uri(file["uri"])
    assert key is not None
    return store.read_bytes(key).decode()


def test_the_run_uses_the_snapshot_and_shows_its_commit(dags_folder: Path, tmp_path: Path) -> None:
    deployed = run(dags_folder, None)
    assert deployed.states == {"only": "success"}, deployed.errors("only")
    assert output(deployed, "said.txt") == "deployed code\n"
    assert json.loads(output(deployed, "execution.json"))["valohai.commit-identifier"] is None

    sent = send_working_tree(modified_copy(tmp_path), LocalStore(STORE))
    adhoc = run(dags_folder, sent.conf)
    assert adhoc.states == {"only": "success"}, adhoc.errors("only")
    assert output(adhoc, "said.txt") == "changed in the working tree\n"
    assert json.loads(output(adhoc, "execution.json"))["valohai.commit-identifier"] == sent.commit
    assert (dags_folder / NAME / "hello.sh").read_text() == "echo deployed code\n"  # untouched


def test_a_corrupt_snapshot_and_a_changed_step_fail_before_the_container(
    dags_folder: Path, tmp_path: Path
) -> None:
    changed = YAML.replace("sh hello.sh", "bash hello.sh")
    sent = send_working_tree(modified_copy(tmp_path, changed), LocalStore(STORE))
    refused = run(dags_folder, sent.conf)
    assert refused.states == {"only": "failed"} and refused.created == []  # type: ignore[attr-defined]
    (message,) = refused.errors("only")
    assert "defines step 'hello' differently from the deployed valohai.yaml (command)" in message, message
    assert "the container was not started" in message and "--local" in message

    uri = sent.conf[ADHOC_KEY]["uri"]
    (STORE / f"adhoc/{sent.conf[ADHOC_KEY]['sha256']}.tar.gz").write_bytes(b"not the snapshot")
    failed = run(dags_folder, sent.conf)
    assert failed.states == {"only": "failed"} and failed.created == []  # type: ignore[attr-defined]
    (message,) = failed.errors("only")
    assert f"the ad hoc code {uri} is corrupt" in message and "not started" in message, message
