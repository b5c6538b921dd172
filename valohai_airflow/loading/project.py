"""One project folder → its plan, compiled once per content.

Airflow re-parses the dags folder every few seconds; a valohai.yaml that did not change must not be
parsed and compiled again. Plans are cached in-process by (path, sha256 of the bytes) and, when a
cache directory is given, as pickles named by that hash (pickle_cache.py) so a fresh parser process
skips the work too; a loader going through a dags folder keeps them in an index by the files' stat
instead (folder_index.py: one file for the folder, the plans inside it unless large), so an unchanged
project is not even read. The path is the one the
dags-folder walk gives, made absolute, not resolved: a symlinked project is known by its link, as
its DAG ids are.
The optional sidecar `valohai-airflow.yaml` beside it is part of the project: its bytes are part of the
hash, its settings land on `ProjectPlan.settings`, and its errors are reported with valohai.yaml's.
Both are read by spec/source.py: regular files only, size checked before reading (a FIFO, a link to
/dev/zero or a huge file is this project's error, read from no cache, and delays no other project).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from valohai_airflow.loading import pickle_cache
from valohai_airflow.loading.folder_index import FolderIndex
from valohai_airflow.plan.compile import compile_config
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.plan.sidecar_checks import check_settings
from valohai_airflow.spec.diagnostics import Diagnostic, Location, Severity, ValohaiSpecError
from valohai_airflow.spec.parse import parse_text
from valohai_airflow.spec.sidecar import SIDECAR_NAME, ProjectSettings, parse_sidecar_text
from valohai_airflow.spec.source import read_optional_source, read_source

__all__ = ["clear_cache", "compile_project", "folder_index"]

# Bump when the plan model or the compiler's output changes, so old pickles are not read back.
# 3: ProjectSettings.deployments; 4: NodePlan.blueprint; 5: NodePlan.machine; 6: PipelinePlan indexes;
# 7: plan classes pickled by their init fields; 8: NodePlan.sources, PipelineParameterPlan.parameter;
# 9: MachinePlan.mounts
# 10: NodePlan.variables (the sidecar's variables)
# 11: ProjectPlan.standalone, PipelinePlan.kind (steps and task blueprints as DAGs)
# 12: folder index entries carry attachments (the task docs)
# 13: a project without a sidecar pickles its settings as a reference to the shared default
PLAN_FORMAT = 13

# path → (content hash, project name, plan). One entry per file, so edits replace rather than pile up.
# A broken file is re-read every parse loop as well: its errors are cached like a plan.
_CACHE: dict[str, tuple[str, str, ProjectPlan | ValohaiSpecError]] = {}
_LOCK = threading.Lock()


def compile_project(
    valohai_yaml: str | os.PathLike[str],
    *,
    project_name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    report: Callable[[Diagnostic], object] | None = None,
    index: FolderIndex | None = None,
) -> ProjectPlan:
    """Parse and compile one valohai.yaml; ValohaiSpecError carries every parse error or, when the
    file parses, every plan error.

    `project_name` defaults to the name of the folder holding the file. `report` is given each
    warning when the file is compiled, not when its plan comes from a cache: once per edit, not on
    every parse (the warnings stay on `ProjectPlan.diagnostics`). `index` (folder_index.py, for a
    loader going through a whole dags folder) spares an unchanged project the read and the hash.
    """
    path = Path(os.path.abspath(valohai_yaml))  # as the walk spells it: no lstat of every component
    name = project_name if project_name is not None else path.parent.name
    stamp = None
    if index is not None:
        stamp, entry = index.lookup(str(path), os.path.join(os.path.dirname(path), SIDECAR_NAME), name)
        if entry is not None and (plan := _indexed(cache_dir, (str(path), entry[2], name), entry[3])):
            return plan
    data = read_source(path)
    sidecar = read_optional_source(os.path.join(os.path.dirname(path), SIDECAR_NAME))
    digest = hashlib.sha256(data)
    if sidecar is not None:  # a project without a sidecar keeps the hash of valohai.yaml alone
        digest.update(b"\0" + SIDECAR_NAME.encode() + b"\0" + sidecar)
    key = (str(path), digest.hexdigest(), name)
    result, pickled, compiled = _cached_or_compiled(key, data, sidecar, cache_dir, report)
    if isinstance(result, ValohaiSpecError):
        raise ValohaiSpecError(result.diagnostics)
    inline = False
    if index is not None and stamp is not None:  # broken files are not indexed: they are compiled again
        inline = index.put(
            key[0], stamp, name, key[1], pickled if pickled is not None else pickle_cache.dumps(result)
        )
    if compiled and cache_dir is not None and pickled is not None and not inline:
        # a plan the index holds inline needs no file of its own (one write less per project)
        pickle_cache.write(_pickle_path(cache_dir, key), pickled)
    return result


def folder_index(
    cache_dir: str | os.PathLike[str] | None, dags_folder: str | os.PathLike[str]
) -> FolderIndex | None:
    """The index of the plans below `dags_folder`, in the cache dir (none without one)."""
    if cache_dir is None:
        return None
    return FolderIndex(
        pickle_cache.cache_path(cache_dir, "index", str(PLAN_FORMAT), os.path.abspath(dags_folder))
    )


def _cached_or_compiled(
    key: tuple[str, str, str],
    data: bytes,
    sidecar: bytes | None,
    cache_dir: str | os.PathLike[str] | None,
    report: Callable[[Diagnostic], object] | None,
) -> tuple[ProjectPlan | ValohaiSpecError, bytes | None, bool]:
    """The plan (or errors) for this content, its pickle when one was at hand (with a cache dir, always
    for a plan compiled here) and whether it was compiled here (the caller writes its pickle file)."""
    result, pickled = _from_caches(key, cache_dir, None)
    compiled = False
    if result is None:
        try:
            result = _compile(data, sidecar, Path(key[0]), key[2], key[1])
        except ValohaiSpecError as exc:
            result = exc
        else:
            compiled = True
            if cache_dir is not None:
                pickled = pickle_cache.dumps(result)
            if report is not None:
                for warning in result.diagnostics:
                    report(warning)
        with _LOCK:
            _CACHE[key[0]] = (key[1], key[2], result)
    return result, pickled, compiled


def _indexed(
    cache_dir: str | os.PathLike[str] | None, key: tuple[str, str, str], pickled: bytes | None
) -> ProjectPlan | None:
    """The plan an index entry names: from this process's cache, its inline bytes or its own pickle."""
    plan, _ = _from_caches(key, cache_dir, pickled)
    return plan if isinstance(plan, ProjectPlan) else None


def _from_caches(
    key: tuple[str, str, str], cache_dir: str | os.PathLike[str] | None, pickled: bytes | None
) -> tuple[ProjectPlan | ValohaiSpecError | None, bytes | None]:
    """This content's plan (or errors) from this process, else from `pickled` or its pickle file
    (then kept in this process too), with the pickle it came from; (None, None) if none has it."""
    cached = _in_process(key)
    if cached is not None:
        return cached, None
    if pickled is None and cache_dir is not None:
        pickled = pickle_cache.read(_pickle_path(cache_dir, key))
    plan = _plan_from(pickled, key) if pickled is not None else None
    if plan is None:
        return None, None
    with _LOCK:
        _CACHE[key[0]] = (key[1], key[2], plan)
    return plan, pickled


def _in_process(key: tuple[str, str, str]) -> ProjectPlan | ValohaiSpecError | None:
    with _LOCK:
        entry = _CACHE.get(key[0])
    return entry[2] if entry is not None and entry[:2] == key[1:] else None


def clear_cache() -> None:
    """Forget the in-process plans (tests, or a long-lived process that wants a fresh start)."""
    with _LOCK:
        _CACHE.clear()


def _compile(data: bytes, sidecar: bytes | None, path: Path, name: str, content_hash: str) -> ProjectPlan:
    """Both files' parse errors, plan errors and sidecar-vs-valohai.yaml errors, all in one raise."""
    result = parse_text(data, str(path))
    errors = list(result.diagnostics.errors)
    warnings = list(result.diagnostics.warnings)
    settings: ProjectSettings | None = ProjectSettings()
    if sidecar is not None:
        parsed = parse_sidecar_text(sidecar, str(path.parent / SIDECAR_NAME))
        errors.extend(parsed.diagnostics.errors)
        warnings.extend(parsed.diagnostics.warnings)
        settings = parsed.settings
    if result.config is None or result.diagnostics.errors:
        raise ValohaiSpecError(errors or [_no_config(path)])
    plan: ProjectPlan | None = None
    try:
        plan = compile_config(
            result.config,
            project_name=name,
            root=str(path.parent),
            content_hash=content_hash,
            settings=settings,
        )
    except ValohaiSpecError as exc:
        errors.extend(exc.diagnostics)
    checked = (
        check_settings(
            settings,
            result.config.pipelines,
            plan.dag_plans if plan else (),
            steps=result.config.steps,
            tasks=result.config.tasks,
        )
        if settings is not None
        else None
    )
    if checked is not None:
        errors.extend(checked.errors)
    if errors or plan is None or settings is None or checked is None:
        raise ValohaiSpecError(errors)
    return dataclasses.replace(
        plan,
        source=str(path),
        diagnostics=(*warnings, *plan.diagnostics, *checked.warnings),
        settings=settings,
    )


def _no_config(path: Path) -> Diagnostic:
    return Diagnostic(Severity.ERROR, "nothing could be read from this file", Location(str(path)))


def _pickle_path(cache_dir: str | os.PathLike[str], key: tuple[str, str, str]) -> Path:
    return pickle_cache.cache_path(cache_dir, "plan", str(PLAN_FORMAT), *key)


def _plan_from(pickled: bytes, key: tuple[str, str, str]) -> ProjectPlan | None:
    """The plan this code pickled earlier for exactly this file content; None if it is not that."""
    plan = pickle_cache.loads(pickled)
    if not isinstance(plan, ProjectPlan) or plan.content_hash != key[1]:
        return None
    return plan
