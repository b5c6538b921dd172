"""`/valohai/config/{parameters,inputs,execution}.json` in the shapes valohai-utils reads
(VALOHAI.md §4.3, valohai/internals/input_info.py, valohai/execution.py).

Paths written into `inputs.json` are CONTAINER paths (`/valohai/inputs/<name>/<file>`): the step
reads them inside the container, and valohai-utils downloads nothing when every path exists.
`parameters.json` must hold every parameter, because a non-empty file replaces valohai-utils'
`prepare()` defaults wholesale. A `.yaml` twin of each file is written too, as Valohai does.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from valohai_airflow import atomic

CONTAINER_ROOT = "/valohai"


@dataclass(frozen=True, slots=True)
class InputFileEntry:
    """One file of one input, as materialised under `inputs/<input>/<name>`."""

    name: str  # relative to inputs/<input>/, `/`-separated (keep-directories may add folders)
    uri: str | None
    size: int
    sha256: str
    metadata: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    datum_id: str | None = None  # a file from the data catalogue (datum://, dataset://, model://)
    catalogue: tuple[str, ...] = ()  # ... the references it was read by (the manifest's, not inputs.json's)


def container_input_path(input_name: str, name: str, container_root: str = CONTAINER_ROOT) -> str:
    return posixpath.join(container_root, "inputs", input_name, name)


def inputs_json(
    inputs: Mapping[str, Sequence[InputFileEntry]],
    container_root: str = CONTAINER_ROOT,
    on_demand: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`{name: {"files": [{"name","path","uri","size","checksums","metadata"[,"datum_id"]}]}}`. An
    input in `on_demand` (name → input id) is described as Valohai describes a `download: on-demand`
    one: its `input_id`, and on each file `input_id` and `download_intent: "on-demand"` (its files
    are in place already, so valohai-utils asks for nothing)."""
    on_demand = on_demand or {}
    result: dict[str, Any] = {}
    for input_name, files in inputs.items():
        input_id = on_demand.get(input_name)
        entries = [_file_entry(input_name, f, container_root) for f in files]
        if input_id:
            for entry in entries:
                entry.update(input_id=input_id, download_intent="on-demand")
        result[input_name] = {"files": entries, **({"input_id": input_id} if input_id else {})}
    return result


def _file_entry(input_name: str, f: InputFileEntry, container_root: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f.name,
        "path": container_input_path(input_name, f.name, container_root),
        "uri": f.uri,
        "size": f.size,
        "checksums": {"sha256": f.sha256},
        "metadata": [dict(m) for m in f.metadata],
    }
    if f.datum_id is not None:
        entry["datum_id"] = f.datum_id
    return entry


def execution_json(
    *,
    execution_id: str,
    step: str,
    image: str,
    project_name: str | None = None,
    commit: str | None = None,
    title: str | None = None,
    counter: int | None = None,
    created_at: datetime | None = None,
    pipeline_id: str | None = None,
    pipeline_title: str | None = None,
    pipeline_node_id: str | None = None,
    pipeline_counter: int | None = None,
    task_id: str | None = None,
    tags: Sequence[str] = (),
) -> dict[str, Any]:
    """The keys Valohai writes; values we do not have are null like Valohai's own absent ones."""
    return {
        "valohai.commit-identifier": commit,
        "valohai.creator-email": None,
        "valohai.creator-id": None,
        "valohai.creator-name": None,
        "valohai.environment-id": None,
        "valohai.environment-name": "airflow",
        "valohai.environment-slug": "airflow",
        "valohai.execution-counter": counter,
        "valohai.execution-ctime": created_at.isoformat() if created_at else None,
        "valohai.execution-duration": None,
        "valohai.execution-id": execution_id,
        "valohai.execution-image": image,
        "valohai.execution-qtime": None,
        "valohai.execution-status": "started",
        "valohai.execution-step": step,
        "valohai.execution-tags": list(tags),
        "valohai.execution-title": title,
        "valohai.project-id": None,
        "valohai.project-name": project_name,
        "valohai.pipeline-counter": pipeline_counter,
        "valohai.pipeline-id": pipeline_id,
        "valohai.pipeline-node-id": pipeline_node_id,
        "valohai.pipeline-tags": [],
        "valohai.pipeline-title": pipeline_title,
        "valohai.task-counter": None,
        "valohai.task-id": task_id,
    }


def _write_readable(path: Path, text: str) -> None:
    """Atomically, readable by the container's user whoever it is."""
    with atomic.replacing(path) as temp:
        temp.write_text(text, encoding="utf-8")
        os.chmod(temp, 0o644)


def write_config_file(config_dir: Path, stem: str, data: Mapping[str, Any]) -> Path:
    """Write `<stem>.json` and `<stem>.yaml`; returns the JSON path."""
    target = Path(config_dir) / f"{stem}.json"
    _write_readable(target, json.dumps(dict(data), indent=2, sort_keys=True, default=str) + "\n")
    _write_readable(
        Path(config_dir) / f"{stem}.yaml",
        yaml.safe_dump(json.loads(json.dumps(dict(data), default=str)), sort_keys=True),
    )
    return target


def write_config_files(
    config_dir: Path,
    *,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, Sequence[InputFileEntry]],
    execution: Mapping[str, Any],
    container_root: str = CONTAINER_ROOT,
    on_demand: Mapping[str, str] | None = None,
) -> None:
    write_config_file(config_dir, "parameters", parameters)
    write_config_file(config_dir, "inputs", inputs_json(inputs, container_root, on_demand))
    write_config_file(config_dir, "execution", execution)
