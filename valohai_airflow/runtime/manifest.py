"""The manifest: what one node try did, returned as its XCom and read by downstream nodes.

It names the node, step, image and command, the exit code and timings, the resolved parameters,
the names (never the values) of its environment variables, the input files, the output files (path, uri, size, sha256, properties), the last metadata value
per key and where the full metadata series is stored. A manifest with many files would be too
big for XCom, so its "large" form keeps the file lists in the store (`files_uri`) and only the
counts inline; `load_manifest` accepts either form and returns the full one.

Stage-out is all or nothing per try: the XCom value is also stored as `<try prefix>/manifest.json`,
last, and only a try with that file has outputs (the Outputs page lists nothing else). A try whose
stage-out failed removes what it had stored (`discard_try`); one killed meanwhile is removed by the
next try of the same node (`discard_unfinished_tries`), so a full store does not stay full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.outputs import OutputCollection
from valohai_airflow.store import ObjectNotFoundError
from valohai_airflow.store.base import ArtifactStore, StoreError, join_key
from valohai_airflow.store.resolver import StoreResolver

# 2: `variables` (names) replaced `environment` (valohai.yaml values); 3: files' `datum_id` and
# `catalogue` (older manifests read as files without them)
SCHEMA_VERSION = 3
#: Above either limit the file lists move to the store.
MAX_INLINE_FILES = 1000
MAX_INLINE_BYTES = 256 * 1024
#: Beside a try's outputs, written last: the try's stage-out finished.
MANIFEST_NAME = "manifest.json"


class ManifestFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    path: str  # outputs: relative to the outputs dir; inputs: relative to inputs/<name>/
    uri: str | None = None
    size: int | None = None
    sha256: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    # data catalogue lineage (runtime/catalogue.py): an input's datum id and the references it was
    # read by (as written, then the record that named it: dataset://d/latest, dataset://d/v3); an
    # output's datum id and the records it became (datum://alias, dataset://d/v, model://m/2)
    datum_id: str | None = None
    catalogue: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    execution_id: str
    node: str
    map_index: int = -1  # a task node's execution: its Airflow map index
    variant: dict[str, Any] = Field(default_factory=dict)  # ... and the parameter values it was given
    step: str
    image: str
    command: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    status: str | None = None  # "succeeded", "failed", "stopped", ...
    started_at: datetime | None = None
    finished_at: datetime | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    # the names of the environment variables it ran with (runtime/variables.py), never their values
    variables: list[str] = Field(default_factory=list)
    inputs: dict[str, list[ManifestFile]] = Field(default_factory=dict)
    outputs: list[ManifestFile] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    metadata_uri: str | None = None
    metadata_truncated: bool = False
    outputs_prefix_uri: str | None = None
    skipped_outputs: list[str] = Field(default_factory=list)
    # the large form: the file lists live at files_uri, only their sizes stay inline
    files_uri: str | None = None
    input_counts: dict[str, int] = Field(default_factory=dict)
    output_count: int | None = None
    # deployment nodes: id, version_id and where the bundle is (runtime.bundles)
    deployment: dict[str, str] = Field(default_factory=dict)
    # a reused execution: the run and execution whose results these are (runtime.reuse)
    reused_from: dict[str, str] | None = None

    @property
    def is_large(self) -> bool:
        return self.files_uri is not None


def output_entries(collection: OutputCollection, uris: Mapping[str, str]) -> list[ManifestFile]:
    """Manifest entries for collected (and uploaded) outputs."""
    return [
        ManifestFile(path=f.path, uri=uris.get(f.path), size=f.size, sha256=f.sha256, properties=f.properties)
        for f in collection.files
    ]


def _files_payload(manifest: Manifest) -> dict[str, Any]:
    return {
        "inputs": {
            name: [f.model_dump(mode="json") for f in files] for name, files in manifest.inputs.items()
        },
        "outputs": [f.model_dump(mode="json") for f in manifest.outputs],
    }


def to_xcom(
    manifest: Manifest,
    store: ArtifactStore,
    key: str,
    *,
    max_inline_files: int = MAX_INLINE_FILES,
    max_inline_bytes: int = MAX_INLINE_BYTES,
) -> dict[str, Any]:
    """The JSON-friendly value to push as XCom: the manifest itself, or its large form with the
    file lists stored under `key`."""
    full = manifest.model_dump(mode="json")
    count = len(manifest.outputs) + sum(len(files) for files in manifest.inputs.values())
    if count <= max_inline_files and len(json.dumps(full, default=str)) <= max_inline_bytes:
        return full
    stored = store.put_json(_files_payload(manifest), key)
    large = manifest.model_copy(
        update={
            "inputs": {},
            "outputs": [],
            "files_uri": stored.uri,
            "input_counts": {name: len(files) for name, files in manifest.inputs.items()},
            "output_count": len(manifest.outputs),
        }
    )
    return large.model_dump(mode="json")


def load_manifest(data: Mapping[str, Any] | Manifest, stores: StoreResolver | None = None) -> Manifest:
    """A full manifest from an XCom value in either form (reading the file lists if needed, through
    `stores`: the configured store and its credentials)."""
    manifest = data if isinstance(data, Manifest) else Manifest.model_validate(dict(data))
    if manifest.files_uri is None:
        return manifest
    payload = (stores or StoreResolver()).read_json(manifest.files_uri)
    if not isinstance(payload, dict):
        raise StoreError(f"{manifest.files_uri} is not a manifest file list")
    inputs = {
        str(name): [ManifestFile.model_validate(f) for f in files]
        for name, files in dict(payload.get("inputs", {})).items()
    }
    outputs = [ManifestFile.model_validate(f) for f in payload.get("outputs", [])]
    if manifest.output_count is not None and len(outputs) != manifest.output_count:
        raise StoreError(
            f"{manifest.files_uri} lists {len(outputs)} outputs, the manifest says {manifest.output_count}"
        )
    return manifest.model_copy(update={"inputs": inputs, "outputs": outputs, "files_uri": None})


def load_upstream(
    values: Mapping[str, Any], stores: StoreResolver | None = None
) -> dict[str, list[Manifest]]:
    """Upstream XCom values by node → their manifests. A task node's value is the list of its
    executions' manifests (Airflow gives a lone one unwrapped); a node that gave nothing is left out."""
    found: dict[str, list[Manifest]] = {}
    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        manifests = [load_manifest(item, stores) for item in items if item is not None]
        if manifests:
            found[name] = sorted(manifests, key=lambda m: m.map_index)
    return found


def store_manifest(value: Mapping[str, Any], store: ArtifactStore, key: ExecutionKey) -> None:
    """Store a try's XCom value as its manifest: from now on its outputs exist."""
    store.put_json(dict(value), join_key(key.prefix, MANIFEST_NAME))


def stored_manifest(store: ArtifactStore, key: ExecutionKey) -> dict[str, Any] | None:
    """The XCom value a try stored when its stage-out finished; None if it never did."""
    try:
        value = store.read_json(join_key(key.prefix, MANIFEST_NAME))
    except ObjectNotFoundError:
        return None
    return value if isinstance(value, dict) else None


def discard_try(store: ArtifactStore, key: ExecutionKey) -> int:
    """Remove everything a try stored (a failed stage-out); returns how many objects."""
    return store.delete_prefix(key.prefix)


def discard_unfinished_tries(store: ArtifactStore, key: ExecutionKey) -> list[int]:
    """Remove what earlier tries of this execution left without finishing their stage-out (killed
    mid-upload, or their own clean-up failed); returns their try numbers. A try with a metadata
    series but no manifest is kept: versions before stored manifests wrote the series last (one
    killed between the two writes is left too, harmless: nothing lists it)."""
    discarded = []
    for number in range(1, key.try_number):
        earlier = ExecutionKey(key.dag_id, key.run_id, key.node, key.map_index, number)
        if any(store.exists(join_key(earlier.prefix, name)) for name in (MANIFEST_NAME, "metadata.jsonl")):
            continue
        if discard_try(store, earlier):
            discarded.append(number)
    return discarded
