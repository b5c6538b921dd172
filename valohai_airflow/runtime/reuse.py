"""Reuse of unchanged nodes (`reuse-executions: true` on a pipeline), without Airflow.

A node whose every ingredient equals an earlier successful execution's does not run again: it
returns that execution's manifest, marked `reused_from`, whose outputs still point at the run that
made them. The ingredients, hashed into the cache key:

- the image name, and its id from the Docker engine when the worker knows it (a re-tagged image
  with the same name is a different image);
- the script the container would run (the built command, parameters interpolated);
- the resolved parameter values;
- every input file's name and sha256 (edge files and URL inputs alike);
- the content hash of the project folder (every file but `.git`, caches and virtualenvs);
- the effective step's settings (environment variables with their values, mounts, resources,
  time limits, ...), minus descriptions.

The index lives in the store: `reuse/<key>.json` holds the earlier XCom value and where it came
from. Only completed executions are recorded. A hit whose outputs are gone from the store is a miss.
The run conf key `valohai.reuse_executions: false` turns reuse off for one run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valohai_airflow.runtime.execution import PreparedExecution
from valohai_airflow.runtime.manifest import Manifest
from valohai_airflow.runtime.workdir import DEFAULT_IGNORE
from valohai_airflow.store.base import ArtifactStore, ObjectNotFoundError, join_key

#: The run conf / Param key that turns reuse off for one run.
CONF_KEY = "valohai.reuse_executions"
KEY_VERSION = 1
_UNHASHED_SETTINGS = frozenset({"description", "icon", "category", "widget", "source_path"})


def reuse_enabled(reuse_executions: bool, conf: Mapping[str, Any]) -> bool:
    """On when the pipeline asks for it and this run's conf does not say otherwise."""
    return reuse_executions and conf.get(CONF_KEY, True) not in (False, "false", "False", 0)


def repository_hash(root: Path, ignore: Sequence[str] = DEFAULT_IGNORE) -> str:
    """sha256 over (relative path, content) of every regular file, sorted; the same files the work
    dir's repository copy gets. Symlinks count by their target text, never followed."""
    digest = hashlib.sha256()
    entries: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, pattern) for pattern in ignore)]
        for name in files:
            if any(fnmatch.fnmatch(name, pattern) for pattern in ignore):
                continue
            path = Path(folder) / name
            entries.append((path.relative_to(root).as_posix(), path))
    for relative, path in sorted(entries):
        digest.update(relative.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + os.readlink(path).encode())
        elif path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1024 * 1024), b""):
                    digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _settings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _settings(v) for k, v in value.items() if k not in _UNHASHED_SETTINGS}
    if isinstance(value, list):
        return [_settings(v) for v in value]
    return value


def cache_ingredients(
    prepared: PreparedExecution, *, image_id: str | None, repository: str
) -> dict[str, Any]:
    """Everything a rerun would depend on, as plain JSON (also stored beside the entry, for humans)."""
    step = prepared.request.node.step
    assert step is not None
    return {
        "version": KEY_VERSION,
        "image": step.image,
        "image_id": image_id,
        "script": prepared.script,
        "parameters": prepared.parameters,
        "inputs": {
            name: sorted([f.name, f.sha256] for f in files) for name, files in sorted(prepared.inputs.items())
        },
        "environment": prepared.step_environment,
        "repository": repository,
        "step": _settings(step.model_dump(mode="json")),
    }


def cache_key(ingredients: Mapping[str, Any]) -> str:
    text = json.dumps(ingredients, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry_key(key: str) -> str:
    return join_key("reuse", f"{key}.json")


def _outputs_present(manifest: Mapping[str, Any], store: ArtifactStore) -> bool:
    """The earlier run's outputs, file list and metadata series are all still in the store."""
    loaded = Manifest.model_validate(dict(manifest))
    for uri in (loaded.files_uri, loaded.metadata_uri):
        key = store.key_for_uri(uri) if uri else None
        if uri and (key is None or not store.exists(key)):
            return False
    if loaded.outputs_prefix_uri is None:
        return not loaded.outputs
    prefix = store.key_for_uri(loaded.outputs_prefix_uri)
    if prefix is None:
        return False
    present = {o.uri for o in store.list_prefix(prefix)}
    return all(f.uri in present for f in loaded.outputs)


def lookup(store: ArtifactStore, key: str) -> dict[str, Any] | None:
    """The earlier XCom value, marked `reused_from`; None on a miss."""
    try:
        entry = store.read_json(_entry_key(key))
    except ObjectNotFoundError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("manifest"), dict):
        return None
    manifest: dict[str, Any] = dict(entry["manifest"])
    if not _outputs_present(manifest, store):
        return None
    manifest["reused_from"] = {k: str(v) for k, v in dict(entry.get("source", {})).items()}
    return manifest


@dataclass
class ReuseGate:
    """One execution's view of the index: the operator asks `lookup()` before starting the container
    and calls `record()` with the manifest after a completed run."""

    prepared: PreparedExecution
    key: str
    ingredients: dict[str, Any]

    @classmethod
    def for_execution(
        cls, prepared: PreparedExecution, image_id: Callable[[], str | None]
    ) -> ReuseGate | None:
        """None when reuse is off for this pipeline or this run."""
        request = prepared.request
        if not reuse_enabled(request.pipeline.reuse_executions, request.conf):
            return None
        ingredients = cache_ingredients(
            prepared, image_id=image_id(), repository=repository_hash(request.project_root)
        )
        return cls(prepared, cache_key(ingredients), ingredients)

    def lookup(self) -> dict[str, Any] | None:
        return lookup(self.prepared.request.store, self.key)

    def record(self, manifest: Mapping[str, Any]) -> None:
        """Remember a completed execution under its key (a reused one is never re-recorded)."""
        if manifest.get("status") != "completed" or manifest.get("reused_from"):
            return
        run = self.prepared.request.key
        source = {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "node": run.node,
            "execution_id": run.execution_id,
        }
        entry = {"manifest": dict(manifest), "source": source, "ingredients": self.ingredients}
        self.prepared.request.store.put_json(entry, _entry_key(self.key))
