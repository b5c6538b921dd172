"""Reuse of unchanged nodes (`reuse-executions: true` on a pipeline), without Airflow.

A node whose every ingredient equals an earlier successful execution's does not run again: it
returns that execution's manifest, marked `reused_from`, whose outputs still point at the run that
made them. The ingredients, hashed into the cache key:

- the image name, and its id from the Docker engine when the worker knows it (a re-tagged image
  with the same name is a different image);
- the script the container would run (the built command, parameters interpolated);
- the resolved parameter values;
- every input file's name and sha256 (edge files and URL inputs alike);
- the content hash of the project folder (the files the work dir's repository copy gets: not
  `.git`, caches, virtualenvs or what `.vhignore` excludes), or the sha256 of the ad hoc code
  snapshot the run conf names (runtime/adhoc.py);
- the environment variables: a non-secret one by its value, a secret one by its source only (an
  Airflow Variable's key, a Connection's id and field), never its value nor a hash of it: a rotated
  credential does not make a step a different execution, while reading another one does;
- the effective step's settings (valohai.yaml's environment variables, mounts, resources, time
  limits, ...), minus descriptions.

The index lives in the store: `reuse/<key>/<finished>-<execution id>.json`, one entry per completed
execution, holds its XCom value, the run that made it and when it finished. A run reuses only an
execution that finished before the run started, never one of its own: three identical nodes of one
run are three executions, whichever order the executor runs them in (as on Valohai, which reuses
executions of earlier pipelines). The newest such entry whose outputs are all still in the store
wins. The run conf key `valohai.reuse_executions: false` turns reuse off for one run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from valohai_airflow.runtime.adhoc import AdhocCode
from valohai_airflow.runtime.execution import PreparedExecution
from valohai_airflow.runtime.manifest import Manifest
from valohai_airflow.runtime.repository import RepositoryRules
from valohai_airflow.store.base import ArtifactStore, ObjectNotFoundError, join_key

#: The run conf / Param key that turns reuse off for one run.
CONF_KEY = "valohai.reuse_executions"
KEY_VERSION = 3  # 2: one entry per execution, with its run and finish time; 3: `variables`
_SHOWN_REFUSALS = 3
_UNHASHED_SETTINGS = frozenset({"description", "icon", "category", "widget", "source_path"})


def reuse_enabled(reuse_executions: bool, conf: Mapping[str, Any]) -> bool:
    """On when the pipeline asks for it and this run's conf does not say otherwise."""
    return reuse_executions and conf.get(CONF_KEY, True) not in (False, "false", "False", 0)


def repository_hash(root: Path) -> str:
    """sha256 over (relative path, content) of every file the work dir's repository copy gets
    (`runtime.repository`: `.vhignore` honoured), sorted. Symlinks count by their target text,
    never followed."""
    digest = hashlib.sha256()
    for relative, path in sorted(RepositoryRules.load(root).walk()):
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


def _variables(prepared: PreparedExecution) -> dict[str, str]:
    """The node's variables as reuse sees them: a secret's source in place of its value."""
    given = prepared.variables
    sources = {v.name: v.source_text for v in prepared.request.node.variables}
    return {
        name: f"secret: {sources.get(name, 'run time')}" if name in given.secret_names else value
        for name, value in sorted(given.environment.items())
    }


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
        "variables": _variables(prepared),
        "repository": repository,
        "step": _settings(step.model_dump(mode="json")),
    }


def cache_key(ingredients: Mapping[str, Any]) -> str:
    text = json.dumps(ingredients, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry_prefix(key: str) -> str:
    return join_key("reuse", key)


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


@dataclass(frozen=True)
class ReuseDecision:
    """What the lookup found: the manifest to return instead of running (None: run), and why."""

    manifest: dict[str, Any] | None
    reason: str


def _refusal(entry: Any, dag_id: str, run_id: str, run_started: datetime, store: ArtifactStore) -> str | None:
    """Why this index entry cannot stand in for an execution of run (dag_id, run_id); None: it can."""
    if not isinstance(entry, dict) or not isinstance(entry.get("manifest"), dict):
        return "unreadable entry"
    source = dict(entry.get("source") or {})
    who = f"{source.get('node')!r} of run {source.get('run_id')!r}"
    if (source.get("dag_id"), source.get("run_id")) == (dag_id, run_id):
        return f"{who}: this run's own execution (nodes of one run never reuse each other)"
    try:
        finished = datetime.fromisoformat(str(source["finished_at"]))
    except (KeyError, ValueError):
        return f"{who}: no finish time recorded"
    if finished.tzinfo is None or finished >= run_started:
        return f"{who}: finished at {finished.isoformat()}, not before this run started ({run_started.isoformat()})"
    if not _outputs_present(entry["manifest"], store):
        return f"{who}: its outputs are gone from the store"
    return None


def lookup(
    store: ArtifactStore, key: str, *, dag_id: str, run_id: str, run_started: datetime
) -> ReuseDecision:
    """The newest completed execution with this key that finished before this run started and is
    not of this run, its XCom value marked `reused_from`; otherwise a miss saying why."""
    names = sorted((o.key for o in store.list_prefix(_entry_prefix(key))), reverse=True)
    refused: list[str] = []
    for name in names:
        try:
            entry = store.read_json(name)
        except ObjectNotFoundError:
            continue
        why = _refusal(entry, dag_id, run_id, run_started, store)
        if why is not None:
            refused.append(why)
            continue
        manifest: dict[str, Any] = dict(entry["manifest"])
        manifest["reused_from"] = {k: str(v) for k, v in dict(entry["source"]).items()}
        source = manifest["reused_from"]
        return ReuseDecision(
            manifest,
            f"reusing {source['node']!r} of run {source['run_id']!r} (finished {source['finished_at']}, "
            f"before this run started at {run_started.isoformat()}): the container does not run",
        )
    if not refused:
        return ReuseDecision(None, f"no earlier execution with reuse key {key[:12]}…: the node runs")
    shown = "; ".join(refused[:_SHOWN_REFUSALS]) + ("; …" if len(refused) > _SHOWN_REFUSALS else "")
    return ReuseDecision(
        None, f"{len(refused)} execution(s) with reuse key {key[:12]}… not reusable ({shown}): the node runs"
    )


@dataclass
class ReuseGate:
    """One execution's view of the index: the operator asks `lookup()` before starting the container
    and calls `record()` with the manifest after a completed run."""

    prepared: PreparedExecution
    key: str
    ingredients: dict[str, Any]
    run_started: datetime

    @classmethod
    def for_execution(
        cls, prepared: PreparedExecution, image_id: Callable[[], str | None], run_started: datetime
    ) -> ReuseGate | None:
        """None when reuse is off for this pipeline or this run. `run_started`: when this dag run
        started (Airflow's dag run start date); only executions finished before it are reused."""
        request = prepared.request
        if not reuse_enabled(request.pipeline.reuse_executions, request.conf):
            return None
        code = AdhocCode.of(request.conf)  # the snapshot the node ran, when the run names one
        repository = f"adhoc:{code.sha256}" if code else repository_hash(request.project_root)
        ingredients = cache_ingredients(prepared, image_id=image_id(), repository=repository)
        return cls(prepared, cache_key(ingredients), ingredients, run_started)

    def lookup(self) -> ReuseDecision:
        run = self.prepared.request.key
        return lookup(
            self.prepared.request.store,
            self.key,
            dag_id=run.dag_id,
            run_id=run.run_id,
            run_started=self.run_started,
        )

    def record(self, manifest: Mapping[str, Any]) -> None:
        """Remember a completed execution under its key (a reused one is never re-recorded)."""
        if manifest.get("status") != "completed" or manifest.get("reused_from"):
            return
        run = self.prepared.request.key
        finished = Manifest.model_validate(dict(manifest)).finished_at or datetime.now(UTC)
        source = {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "node": run.node,
            "execution_id": run.execution_id,
            "finished_at": finished.astimezone(UTC).isoformat(),
        }
        entry = {"manifest": dict(manifest), "source": source, "ingredients": self.ingredients}
        name = f"{finished.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{run.execution_id}.json"
        self.prepared.request.store.put_json(entry, join_key(_entry_prefix(self.key), name))
