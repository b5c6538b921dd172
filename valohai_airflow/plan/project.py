"""One project folder → its plan, compiled once per content.

Airflow re-parses the dags folder every few seconds; a valohai.yaml that did not change must not be
parsed and compiled again. Plans are cached in-process by (path, sha256 of the bytes) and, when a
cache directory is given, as pickles named by that hash so a fresh parser process skips the work too.
The optional sidecar `valohai-airflow.yaml` beside it is part of the project: its bytes are part of the
hash, its settings land on `ProjectPlan.settings`, and its errors are reported with valohai.yaml's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import tempfile
import threading
from pathlib import Path

from valohai_airflow.plan.compile import compile_config
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.plan.naming import dag_id_for, task_id_for
from valohai_airflow.plan.settings import check_settings
from valohai_airflow.spec.diagnostics import Diagnostic, Location, Severity, ValohaiSpecError
from valohai_airflow.spec.parse import parse_text
from valohai_airflow.spec.sidecar import SIDECAR_NAME, ProjectSettings, parse_sidecar_text

__all__ = ["clear_cache", "compile_project", "dag_id_for", "task_id_for"]

# Bump when the plan model or the compiler's output changes, so old pickles are not read back.
PLAN_FORMAT = (
    5  # 3: ProjectSettings.deployments; 4: NodePlan.blueprint (task nodes fan out); 5: NodePlan.machine
)

# path → (content hash, project name, plan). One entry per file, so edits replace rather than pile up.
# A broken file is re-read every parse loop as well: its errors are cached like a plan.
_CACHE: dict[str, tuple[str, str, ProjectPlan | ValohaiSpecError]] = {}
_LOCK = threading.Lock()


def compile_project(
    valohai_yaml: str | os.PathLike[str],
    *,
    project_name: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ProjectPlan:
    """Parse and compile one valohai.yaml; ValohaiSpecError carries every parse error or, when the
    file parses, every plan error.

    `project_name` defaults to the name of the folder holding the file.
    """
    path = Path(valohai_yaml).resolve()
    data = path.read_bytes()
    sidecar = _read_sidecar(path)
    digest = hashlib.sha256(data)
    if sidecar is not None:  # a project without a sidecar keeps the hash of valohai.yaml alone
        digest.update(b"\0" + SIDECAR_NAME.encode() + b"\0" + sidecar)
    content_hash = digest.hexdigest()
    name = project_name if project_name is not None else path.parent.name
    key = (str(path), content_hash, name)
    with _LOCK:
        entry = _CACHE.get(key[0])
    cached = entry[2] if entry is not None and entry[:2] == key[1:] else None
    if cached is None:
        cached = _load_pickle(cache_dir, key) if cache_dir is not None else None
        if cached is None:
            try:
                cached = _compile(data, sidecar, path, name, content_hash)
            except ValohaiSpecError as exc:
                cached = exc
            else:
                if cache_dir is not None:
                    _store_pickle(cache_dir, key, cached)
        with _LOCK:
            _CACHE[key[0]] = (content_hash, name, cached)
    if isinstance(cached, ValohaiSpecError):
        raise ValohaiSpecError(cached.diagnostics)
    return cached


def clear_cache() -> None:
    """Forget the in-process plans (tests, or a long-lived process that wants a fresh start)."""
    with _LOCK:
        _CACHE.clear()


def _read_sidecar(path: Path) -> bytes | None:
    """The sidecar's bytes; None when the project has none."""
    try:
        return (path.parent / SIDECAR_NAME).read_bytes()
    except FileNotFoundError:
        return None


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
        check_settings(settings, result.config.pipelines, plan.pipelines if plan else ())
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
    digest = hashlib.sha256("\0".join((str(PLAN_FORMAT), *key)).encode("utf-8")).hexdigest()
    return Path(cache_dir) / f"plan-{digest}.pickle"


def _load_pickle(cache_dir: str | os.PathLike[str], key: tuple[str, str, str]) -> ProjectPlan | None:
    """A plan this code wrote earlier for exactly this file content; None if absent or unreadable."""
    try:
        with _pickle_path(cache_dir, key).open("rb") as handle:
            plan = pickle.load(handle)  # our own cache dir, written by _store_pickle
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        return None
    if not isinstance(plan, ProjectPlan) or plan.content_hash != key[1]:
        return None
    return plan


def _store_pickle(cache_dir: str | os.PathLike[str], key: tuple[str, str, str], plan: ProjectPlan) -> None:
    """Write atomically (temp file + rename) so a concurrent reader never sees half a pickle."""
    target = _pickle_path(cache_dir, key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".plan-", suffix=".tmp")
    except OSError:
        return  # the cache is an optimisation; a read-only cache dir must not break parsing
    try:
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(plan, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp, target)
    except (OSError, pickle.PicklingError):
        Path(temp).unlink(missing_ok=True)
