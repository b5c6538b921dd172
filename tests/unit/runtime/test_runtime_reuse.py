"""Reuse cache keys over really prepared executions (real work dirs, inputs and a LocalStore; no Docker):
stable across runs, different when any ingredient changes; the index in the store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.runtime.adhoc import send_working_tree
from valohai_airflow.runtime.execution import ExecutionRequest, PreparedExecution, prepare
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.inputs import DownloadCache
from valohai_airflow.runtime.manifest import Manifest, ManifestFile
from valohai_airflow.runtime.reuse import (
    CONF_KEY,
    ReuseGate,
    cache_ingredients,
    cache_key,
    repository_hash,
    reuse_enabled,
)
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: train
    image: busybox
    command: echo {parameters} > /valohai/outputs/out.txt
    parameters:
      - {name: epochs, type: integer, default: 3}
    inputs:
      - {name: data, default: data.csv}
    environment-variables:
      - {name: MODE, default: fast}
    time-limit: %s
- pipeline:
    name: p
    reuse-executions: %s
    nodes:
      - {name: train, type: execution, step: train}
    edges: []
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "train.py").write_text("print('hi')\n")
    return root


def prepared_execution(
    tmp_path: Path,
    project: Path,
    *,
    conf: dict[str, Any] | None = None,
    run_id: str = "run1",
    time_limit: str = "60",
    reuse: str = "true",
) -> PreparedExecution:
    plan = compile_text(YAML % (time_limit, reuse)).pipelines[0]
    return prepare(
        ExecutionRequest(
            key=ExecutionKey("proj__p", run_id, "train"),
            project_name="proj",
            project_root=project,
            pipeline=plan,
            node=plan.node("train"),
            conf=conf or {},
            upstream={},
            stores=StoreResolver(LocalStore(tmp_path / "store")),
            work_base=tmp_path / "work",
            cache=DownloadCache(tmp_path / "cache"),
        )
    )


EARLY = datetime(2026, 1, 1, tzinfo=UTC)  # a run start before every recorded execution
LATE = datetime(2100, 1, 1, tzinfo=UTC)  # a run start after every recorded execution


def gate_for(prepared: PreparedExecution, run_started: datetime = LATE) -> ReuseGate:
    gate = ReuseGate.for_execution(prepared, lambda: "sha256:1", run_started)
    assert gate is not None
    return gate


def key_of(prepared: PreparedExecution, image_id: str | None = "sha256:1") -> str:
    root = prepared.request.project_root
    return cache_key(cache_ingredients(prepared, image_id=image_id, repository=repository_hash(root)))


def test_the_key_is_stable_across_runs_and_ignores_git_and_caches(tmp_path: Path, project: Path) -> None:
    first = key_of(prepared_execution(tmp_path, project, run_id="run1"))
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "__pycache__").mkdir()
    (project / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    second = key_of(prepared_execution(tmp_path, project, run_id="run2"))
    assert first == second
    assert len(first) == 64


@pytest.mark.parametrize(
    "change",
    [
        "image id",
        "parameter",
        "input content",
        "repository file",
        "new repository file",
        "step setting",
        "env",
    ],
)
def test_the_key_changes_with_every_ingredient(tmp_path: Path, project: Path, change: str) -> None:
    base = key_of(prepared_execution(tmp_path, project))
    changes: dict[str, Callable[[], str]] = {
        "image id": lambda: key_of(prepared_execution(tmp_path, project), image_id="sha256:2"),
        "parameter": lambda: key_of(
            prepared_execution(tmp_path, project, conf={"train.parameter.epochs": 4})
        ),
        "input content": lambda: (
            (project / "data.csv").write_text("a,b\n1,3\n"),
            key_of(prepared_execution(tmp_path, project)),
        )[1],
        "repository file": lambda: (
            (project / "train.py").write_text("print('bye')\n"),
            key_of(prepared_execution(tmp_path, project)),
        )[1],
        "new repository file": lambda: (
            (project / "extra.py").write_text(""),
            key_of(prepared_execution(tmp_path, project)),
        )[1],
        "step setting": lambda: key_of(prepared_execution(tmp_path, project, time_limit="61")),
        "env": lambda: _env_changed(tmp_path, project),
    }
    assert changes[change]() != base


def _env_changed(tmp_path: Path, project: Path) -> str:
    return key_of(prepared_execution(tmp_path, project, conf={"train.variable.MODE": "slow"}))


def test_reuse_is_on_only_for_reuse_pipelines_and_a_run_can_turn_it_off(
    tmp_path: Path, project: Path
) -> None:
    assert reuse_enabled(True, {}) and reuse_enabled(True, {CONF_KEY: True})
    assert not reuse_enabled(True, {CONF_KEY: False}) and not reuse_enabled(False, {})
    no_reuse = prepared_execution(tmp_path, project, reuse="false")
    assert ReuseGate.for_execution(no_reuse, lambda: None, LATE) is None
    off = prepared_execution(tmp_path, project, conf={CONF_KEY: False})
    assert ReuseGate.for_execution(off, lambda: None, LATE) is None


def completed_manifest(prepared: PreparedExecution, status: str = "completed") -> dict[str, Any]:
    store = prepared.request.store
    prefix = prepared.request.key.prefix
    out = store.put_bytes(b"result", f"{prefix}/outputs/out.txt")
    meta = store.put_bytes(b"", f"{prefix}/metadata.jsonl")
    return Manifest(
        execution_id=prepared.request.key.execution_id,
        node="train",
        step="train",
        image="busybox",
        status=status,
        outputs=[ManifestFile(path="out.txt", uri=out.uri, size=6)],
        metadata_uri=meta.uri,
        outputs_prefix_uri=store.uri(f"{prefix}/outputs"),
    ).model_dump(mode="json")


def test_record_then_lookup_marks_the_source_and_keeps_its_outputs(tmp_path: Path, project: Path) -> None:
    first = prepared_execution(tmp_path, project, run_id="run1")
    gate = gate_for(first)
    miss = gate.lookup()
    assert miss.manifest is None and "no earlier execution" in miss.reason
    manifest = completed_manifest(first)
    gate.record(manifest)

    again = gate_for(prepared_execution(tmp_path, project, run_id="run2"))
    assert again.key == gate.key
    hit = again.lookup().manifest
    assert hit is not None
    finished = hit["reused_from"].pop("finished_at")
    assert datetime.fromisoformat(finished) < LATE
    assert hit["reused_from"] == {
        "dag_id": "proj__p",
        "run_id": "run1",
        "node": "train",
        "execution_id": first.request.key.execution_id,
    }
    assert hit["outputs"] == manifest["outputs"] and "/run1/" in hit["outputs"][0]["uri"]
    again.record(hit)  # a reused manifest is never recorded again: the source stays run1
    assert again.lookup().manifest["reused_from"]["run_id"] == "run1"  # type: ignore[index]

    store = first.request.store
    store.delete_prefix(f"{first.request.key.prefix}/outputs")
    gone = again.lookup()
    assert gone.manifest is None and "outputs are gone" in gone.reason  # run again


def test_nodes_of_one_run_never_reuse_each_other(tmp_path: Path, project: Path) -> None:
    """Three identical nodes run one after another in the same run: each finds the others' entries
    and refuses them, so all three run (the run started before any of them finished)."""
    run_started = datetime.now(UTC) - timedelta(seconds=1)
    decisions = []
    for _ in range(3):
        prepared = prepared_execution(tmp_path, project, run_id="run1")
        gate = gate_for(prepared, run_started)
        decisions.append(gate.lookup())
        gate.record(completed_manifest(prepared))
    assert [d.manifest for d in decisions] == [None, None, None]
    assert "this run's own execution" in decisions[2].reason and decisions[2].reason.startswith("2 ")


def test_a_run_reuses_only_executions_finished_before_it_started(tmp_path: Path, project: Path) -> None:
    """An execution of another run that finished after this run started (a run beside it) is refused;
    one that finished before is reused, the newest first."""
    older = prepared_execution(tmp_path, project, run_id="run1")
    gate_for(older).record(completed_manifest(older))
    between = datetime.now(UTC)
    newer = prepared_execution(tmp_path, project, run_id="run2")
    gate_for(newer).record(completed_manifest(newer))

    beside = gate_for(prepared_execution(tmp_path, project, run_id="run3"), between).lookup()
    assert beside.manifest is not None and beside.manifest["reused_from"]["run_id"] == "run1"
    assert "'run1'" in beside.reason
    before_both = gate_for(prepared_execution(tmp_path, project, run_id="run3"), EARLY).lookup()
    assert before_both.manifest is None and "not before this run started" in before_both.reason
    after_both = gate_for(prepared_execution(tmp_path, project, run_id="run3"), LATE).lookup()
    assert after_both.manifest is not None and after_both.manifest["reused_from"]["run_id"] == "run2"


def test_failed_executions_are_not_recorded(tmp_path: Path, project: Path) -> None:
    prepared = prepared_execution(tmp_path, project)
    gate = gate_for(prepared)
    gate.record(completed_manifest(prepared, status="failed"))
    assert gate.lookup().manifest is None


def test_with_ad_hoc_code_the_key_covers_the_snapshot_not_the_deployed_folder(
    tmp_path: Path, project: Path
) -> None:
    """The node's repository is the snapshot (runtime/adhoc.py), so its hash is what counts."""
    tree = tmp_path / "working-tree"
    shutil.copytree(project, tree)
    (tree / "valohai.yaml").write_text(YAML % ("60", "true"))
    (project / "valohai.yaml").write_text(YAML % ("60", "true"))
    (tree / "train.py").write_text("print('changed')\n")
    store = LocalStore(tmp_path / "store")
    conf = send_working_tree(tree, store).conf
    adhoc = prepared_execution(tmp_path, project, conf=conf)
    assert (adhoc.workdir.repository / "train.py").read_text() == "print('changed')\n"
    adhoc_key = gate_for(adhoc).key
    deployed_key = gate_for(prepared_execution(tmp_path, project, run_id="run2")).key
    assert adhoc_key != deployed_key
    (project / "train.py").write_text("print('deployed, changed')\n")  # the dags folder changes
    assert gate_for(prepared_execution(tmp_path, project, conf=conf, run_id="run3")).key == adhoc_key
    assert gate_for(prepared_execution(tmp_path, project, run_id="run4")).key != deployed_key
    (tree / "train.py").write_text("print('changed again')\n")
    other = prepared_execution(tmp_path, project, conf=send_working_tree(tree, store).conf, run_id="run5")
    assert gate_for(other).key != adhoc_key
