"""Reusing chosen nodes of an earlier run: conf parsing, the upstream closure, the source run's tries
in a real LocalStore (written as stage-out writes them), and the refusals' messages. No Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.manifest import Manifest, ManifestFile, store_manifest, stored_manifest
from valohai_airflow.runtime.reuse_nodes import (
    NODES_KEY,
    RUN_KEY,
    UPSTREAM_OF_KEY,
    NodeReuse,
    ReuseNodesError,
    missing_files,
    requested,
    reusable_nodes,
    reuse_conf,
    upstream_closure,
)
from valohai_airflow.store import LocalStore
from valohai_airflow.store.base import join_key

YAML = """\
- step: {name: s, image: busybox, command: "true", parameters: [{name: lr, type: float, default: 0.1}], inputs: [{name: x, optional: true}, {name: y, optional: true}]}
- task: {step: s, name: sweep, type: grid-search, parameters: [{name: lr, style: multiple, rules: {items: [1, 2]}}]}
- pipeline:
    name: p
    nodes:
      - {name: prep, type: execution, step: s}
      - {name: train, type: execution, step: s}
      - {name: side, type: execution, step: s}
      - {name: grid, type: task, task: sweep}
      - {name: report, type: execution, step: s}
    edges:
      - [prep.output.*, train.input.x]
      - [train.output.*, report.input.x]
      - [grid.output.*, report.input.y]
"""
DAG = "proj__p"


@pytest.fixture
def plan() -> PipelinePlan:
    return compile_text(YAML).pipelines[0]


def stage_out(
    store: LocalStore,
    node: str,
    *,
    run: str = "run1",
    map_index: int = -1,
    try_number: int = 1,
    status: str = "completed",
) -> dict[str, object]:
    """What `runtime.execution.finish` leaves: an output, then the manifest, last."""
    key = ExecutionKey(DAG, run, node, map_index, try_number)
    out = store.put_bytes(
        f"{node}-{map_index}-{try_number}".encode(), join_key(key.prefix, "outputs", "a.txt")
    )
    manifest = Manifest(
        execution_id=key.execution_id,
        node=node,
        map_index=map_index,
        variant={"lr": map_index + 1} if map_index >= 0 else {},
        step="s",
        image="busybox",
        status=status,
        outputs=[ManifestFile(path="a.txt", uri=out.uri, size=out.size)],
        outputs_prefix_uri=store.uri(join_key(key.prefix, "outputs")),
    )
    value = manifest.model_dump(mode="json")
    store_manifest(value, store, key)
    return value


def test_no_request_is_none_and_a_request_names_the_run_and_nodes(plan: PipelinePlan) -> None:
    assert requested(plan, {RUN_KEY: None, NODES_KEY: []}, run_id="r2") is None
    reuse = requested(plan, {RUN_KEY: "r1", NODES_KEY: ["prep", "side"]}, run_id="r2", dag_id=DAG)
    assert reuse == NodeReuse(DAG, "r1", frozenset({"prep", "side"}))


def test_upstream_of_reuses_every_ancestor_but_not_the_node_itself(plan: PipelinePlan) -> None:
    assert upstream_closure(plan, ["report"]) == {"prep", "train", "grid"}
    assert upstream_closure(plan, ["train"]) == {"prep"}
    reuse = requested(plan, {RUN_KEY: "r1", UPSTREAM_OF_KEY: ["report"]}, run_id="r2")
    assert reuse is not None and reuse.nodes == {"prep", "train", "grid"}


def test_bad_requests_are_refused_with_the_key_and_value(plan: PipelinePlan) -> None:
    with pytest.raises(
        ReuseNodesError, match=r"'valohai.reuse.nodes'.*no node 'trian'.*did you mean \"train\""
    ):
        requested(plan, {RUN_KEY: "r1", NODES_KEY: ["trian"]}, run_id="r2")
    with pytest.raises(ReuseNodesError, match="names no source run"):
        requested(plan, {NODES_KEY: ["train"]}, run_id="r2")
    with pytest.raises(ReuseNodesError, match="is this run itself"):
        requested(plan, {RUN_KEY: "r2", NODES_KEY: ["train"]}, run_id="r2")
    with pytest.raises(ReuseNodesError, match="no node to reuse"):
        requested(plan, {RUN_KEY: "r1", UPSTREAM_OF_KEY: ["prep"]}, run_id="r2")
    with pytest.raises(ReuseNodesError, match="expected a list of node names"):
        requested(plan, {RUN_KEY: "r1", NODES_KEY: [3]}, run_id="r2")


def test_reuse_conf_is_what_the_client_passes_and_is_checked(plan: PipelinePlan) -> None:
    conf = reuse_conf(plan, "r1", nodes=["prep"], upstream_of=["report"])
    assert conf == {RUN_KEY: "r1", NODES_KEY: ["prep"], UPSTREAM_OF_KEY: ["report"]}
    with pytest.raises(ReuseNodesError, match="no node 'nope'"):
        reuse_conf(plan, "r1", nodes=["nope"])
    assert reusable_nodes(plan) == ["prep", "train", "side", "grid", "report"]


def test_the_last_successful_try_is_reused_and_marked(plan: PipelinePlan, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    stage_out(store, "train", try_number=1)
    stage_out(store, "train", try_number=2, status="failed")
    reuse = NodeReuse(DAG, "run1", frozenset({"train"}))
    key = ExecutionKey(DAG, "run2", "train")
    value = reuse.reused_manifest(store, plan.node("train"), key)
    assert value["reused_from"] == {
        "dag_id": DAG,
        "run_id": "run1",
        "node": "train",
        "map_index": "-1",
        "try_number": "1",
        "execution_id": ExecutionKey(DAG, "run1", "train").execution_id,
    }
    assert value["outputs"][0]["uri"].endswith("run1/train/-1/1/outputs/a.txt")
    assert stored_manifest(store, key) == value
    chained = NodeReuse(DAG, "run2", frozenset({"train"})).reused_manifest(
        store, plan.node("train"), ExecutionKey(DAG, "run3", "train")
    )  # run 3 reuses it from run 2: the files are still run 1's, the link is to run 2
    assert chained["outputs"] == value["outputs"] and chained["reused_from"]["run_id"] == "run2"


def test_a_source_without_the_node_or_its_files_is_refused(plan: PipelinePlan, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    stage_out(store, "prep")
    reuse = NodeReuse(DAG, "run1", frozenset({"prep", "train"}))
    with pytest.raises(
        ReuseNodesError, match=r"node 'train': run 'run1'.*no execution of it.*never ran there"
    ):
        reuse.check_sources(store, plan)
    stage_out(store, "train", status="failed")
    reuse.check_sources(store, plan)  # it stored one: its own task checks the status
    with pytest.raises(ReuseNodesError, match="no successful execution"):
        reuse.reused_manifest(store, plan.node("train"), ExecutionKey(DAG, "run2", "train"))
    gone = stage_out(store, "side")
    store.delete_prefix(join_key(ExecutionKey(DAG, "run1", "side").prefix, "outputs"))
    assert missing_files(gone, store) == [gone["outputs"][0]["uri"]]  # type: ignore[index]
    with pytest.raises(ReuseNodesError, match=r"node 'side': cannot reuse try 1 of run 'run1'.*gone.*a.txt"):
        NodeReuse(DAG, "run1", frozenset({"side"})).reused_manifest(
            store, plan.node("side"), ExecutionKey(DAG, "run2", "side")
        )


def test_a_reused_task_node_brings_the_source_variants(plan: PipelinePlan, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for index in (0, 1):
        stage_out(store, "grid", map_index=index)
    reuse = NodeReuse(DAG, "run1", frozenset({"grid"}))
    node = plan.node("grid")
    assert reuse.source_variants(store, node) == [{"lr": 1}, {"lr": 2}]
    value = reuse.reused_manifest(store, node, ExecutionKey(DAG, "run2", node.task_id, 1))
    assert value["map_index"] == 1 and value["reused_from"]["map_index"] == "1"
    with pytest.raises(ReuseNodesError, match="no execution with map index 2"):
        reuse.reused_manifest(store, node, ExecutionKey(DAG, "run2", node.task_id, 2))
