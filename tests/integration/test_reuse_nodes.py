"""Reusing chosen nodes of an earlier run, for real: dag.test(), the Docker engine, the store.

Run 1 runs everything; run 2 names run 1 and reuses every node upstream of `report`. Whether a
container ran is read from the engine's own event log (`docker events`), and what `report` got
from the files it wrote. Refused requests start no container at all.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import STORE, run_pipeline
from tests.support.containers import containers_created, created_events
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.reuse_nodes import NODES_KEY, RUN_KEY, UPSTREAM_OF_KEY
from valohai_airflow.store import LocalStore
from valohai_airflow.store.base import join_key

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

NAME = "rn-nodes"
UUID = "cat /proc/sys/kernel/random/uuid"
YAML = f"""\
- step:
    name: prep
    image: {BUSYBOX}
    command: {UUID} > /valohai/outputs/data.txt
- step:
    name: train
    image: {BUSYBOX}
    command: (cat /valohai/inputs/data/data.txt; {UUID}) > /valohai/outputs/model.txt
    inputs: [{{name: data}}]
- step:
    name: sweep
    image: {BUSYBOX}
    command: (echo lr={{parameter-value:lr}}; {UUID}) > /valohai/outputs/lr.txt
    parameters: [{{name: lr, type: integer, default: 0}}]
- step:
    name: report
    image: {BUSYBOX}
    command: cat /valohai/inputs/model/model.txt > /valohai/outputs/report.txt
    inputs: [{{name: model}}, {{name: grid}}]
- task: {{step: sweep, name: lrs, type: grid-search, parameters: [{{name: lr, style: multiple, rules: {{items: [1, 2]}}}}]}}
- pipeline:
    name: p
    nodes:
      - {{name: prep, type: execution, step: prep}}
      - {{name: train, type: execution, step: train}}
      - {{name: grid, type: task, task: lrs}}
      - {{name: report, type: execution, step: report}}
    edges:
      - [prep.output.data.txt, train.input.data]
      - [train.output.model.txt, report.input.model]
      - [grid.output.lr.txt, report.input.grid]
"""


def run(dags_folder: Path, conf: dict[str, Any] | None = None) -> Any:
    shutil.rmtree(dags_folder / NAME, ignore_errors=True)  # run_pipeline adds the project each time
    started = time.time()
    outcome = run_pipeline(dags_folder, NAME, YAML, conf=conf)
    time.sleep(0.2)  # let the engine's event log catch up
    outcome.created = containers_created(outcome.run.dag_id, outcome.run.run_id, started - 60)
    return outcome


def text(uri: str) -> str:
    store = LocalStore(STORE)
    key = store.key_for_uri(uri)
    assert key is not None, uri
    return store.read_bytes(key).decode()


def test_run_2_reuses_everything_upstream_of_report_without_containers(dags_folder: Path) -> None:
    first = run(dags_folder)
    assert set(first.states.values()) == {"success"}, first.states
    assert first.created == ["grid", "grid", "prep", "report", "train"]
    model = first.xcom("train")["outputs"][0]

    second = run(dags_folder, {RUN_KEY: first.run.run_id, UPSTREAM_OF_KEY: ["report"]})
    assert set(second.states.values()) == {"success"}, second.states
    assert second.created == ["report"]  # prep, train and both grid executions started no container
    train = second.xcom("train")
    assert train["reused_from"]["run_id"] == first.run.run_id and train["reused_from"]["try_number"] == "1"
    assert train["outputs"][0]["uri"] == model["uri"]
    grid = second.xcom("grid")
    assert [m["reused_from"]["map_index"] for m in grid] == ["0", "1"]
    assert second.xcom("grid__variants") == first.xcom("grid__variants")
    report = text(second.xcom("report")["outputs"][0]["uri"])
    assert report.startswith(text(model["uri"]))  # run 1's model.txt, not a new one
    assert [f["uri"] for f in second.xcom("report")["inputs"]["grid"]] == [
        m["outputs"][0]["uri"] for m in first.xcom("grid")
    ]
    assert second.xcom("report")["reused_from"] is None


def test_refused_requests_name_node_and_run_and_start_nothing(dags_folder: Path) -> None:
    started = time.time()
    with pytest.raises(ParamValidationError, match=r"valohai.reuse.nodes: 'trian' is not one of"):
        run(dags_folder, {RUN_KEY: "manual__earlier", NODES_KEY: ["trian"]})
    time.sleep(0.2)
    assert created_events(started, [f"valohai-airflow.dag={NAME}__p"], "{{.ID}}") == []  # the enum refused it

    never = run(dags_folder, {RUN_KEY: "manual__never", NODES_KEY: ["prep"]})
    assert never.created == []
    assert never.states["prep"] == "failed" and never.states["report"] in {"failed", "upstream_failed"}
    (message,) = never.errors("prep")
    assert "node 'prep': run 'manual__never'" in message and "never ran there" in message, message
    assert any("no container was started" in e for e in never.errors("grid"))


def test_a_reused_node_whose_outputs_are_gone_is_refused(dags_folder: Path) -> None:
    first = run(dags_folder)
    assert set(first.states.values()) == {"success"}, first.states
    dag_id, source = first.run.dag_id, first.run.run_id
    LocalStore(STORE).delete_prefix(join_key(ExecutionKey(dag_id, source, "train").prefix, "outputs"))
    second = run(dags_folder, {RUN_KEY: source, NODES_KEY: ["prep", "train"]})
    assert second.states["prep"] == "success" and second.states["train"] == "failed", second.states
    (message,) = second.errors("train")
    assert f"node 'train': cannot reuse try 1 of run {source!r}" in message and "model.txt" in message, (
        message
    )
    assert "grid" in second.created and "train" not in second.created and "prep" not in second.created
