"""An input fed by an edge never resolves its step default when the node's edge-merge-mode is
`replace` (the default): Valohai never uses that default, so a `datum://` reference or a missing
URL there must not fail the node (issue 21's defect). Real work dirs and a LocalStore, no Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.runtime.execution import ExecutionError, ExecutionRequest, PreparedExecution, prepare
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.inputs import DownloadCache
from valohai_airflow.runtime.manifest import Manifest, ManifestFile
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: make
    image: busybox
    command: echo hi > /valohai/outputs/model.bin
- step:
    name: use
    image: busybox
    command: ls /valohai/inputs/model
    inputs:
      - {name: model, default: "%s"}
- pipeline:
    name: p
    nodes:
      - {name: make, type: execution, step: make}
      - {name: use, type: execution, step: use, edge-merge-mode: %s}
    edges:
      - [make.output.model.bin, use.input.model]
"""


def prepare_use(tmp_path: Path, default: str, mode: str) -> PreparedExecution:
    plan = compile_text(YAML % (default, mode)).pipelines[0]
    project = tmp_path / "proj"
    project.mkdir()
    store = LocalStore(tmp_path / "store")
    made = store.put_bytes(b"weights", "proj__p/run1/make/-1/1/outputs/model.bin")
    upstream: dict[str, Any] = {
        "make": Manifest(
            execution_id="e-make",
            node="make",
            step="make",
            image="busybox",
            status="succeeded",
            outputs=[ManifestFile(path="model.bin", uri=made.uri, size=7)],
        ).model_dump(mode="json")
    }
    return prepare(
        ExecutionRequest(
            key=ExecutionKey("proj__p", "run1", "use"),
            project_name="proj",
            project_root=project,
            pipeline=plan,
            node=plan.node("use"),
            conf={},
            upstream=upstream,
            stores=StoreResolver(store),
            work_base=tmp_path / "work",
            cache=DownloadCache(tmp_path / "cache"),
        )
    )


@pytest.mark.parametrize("default", ["datum://production-model", "no-such-folder/model.bin"])
def test_an_edge_fed_input_never_resolves_its_replaced_default(tmp_path: Path, default: str) -> None:
    prepared = prepare_use(tmp_path, default, "replace")
    files = prepared.inputs["model"]
    assert [(f.name, f.size) for f in files] == [("model.bin", 7)]
    assert (prepared.workdir.inputs / "model" / "model.bin").read_bytes() == b"weights"


def test_with_append_the_default_is_still_resolved(tmp_path: Path) -> None:
    with pytest.raises(
        ExecutionError, match=r"node 'use': input 'model': input file not found: .*no-such-folder"
    ):
        prepare_use(tmp_path, "no-such-folder/model.bin", "append")
