"""Finds every valohai.yaml below the dags folder (the loader file's DAG bundle) and builds its DAGs.

A broken valohai.yaml never hides the DAGs of other projects: it becomes one placeholder DAG,
`valohai_error__<project>`, whose description and docs carry every error with file:line:column,
and whose only task fails with the same text. The DAG list of the web UI shows it at once,
without anyone reading logs. With `[valohai] strict_loading = True` the error is raised instead,
which Airflow shows as an ordinary import error of the loader file.

No project takes another's DAG ids: two folders that spell one project name (`team/churn` and
`team__churn`), or two projects that would both have one DAG id, all become error DAGs naming each
other, whichever was there first (first come would depend on the order of the walk).

Warnings are logged by the parse that compiles a changed file (later parses read its plan from the
cache and stay quiet); `valohai-airflow lint` shows them at any time.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from airflow.sdk import DAG, get_parsing_context

from valohai_airflow.airflow.discovery import find_valohai_yamls
from valohai_airflow.airflow.docs import default_queue
from valohai_airflow.airflow.factory import START_DATE, build_dags
from valohai_airflow.airflow.operators import FailWithMessageOperator
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.bundle_root import bundle_root
from valohai_airflow.loading.dags_folder import dag_id_clashes, name_clashes, project_name_for
from valohai_airflow.loading.project import compile_project, folder_index
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.plan.naming import dag_id_for, project_dag_prefix

log = logging.getLogger(__name__)


def error_dag_id(project_name: str, clashing_folder: str | None = None) -> str:
    """`valohai_error__<project>`; for one of several folders that spell one project name, a short
    hash of its folder path follows, so each of them has its own error DAG."""
    dag_id = "valohai_error__" + project_dag_prefix(project_name).rstrip("_")
    if clashing_folder is not None:
        dag_id += "__" + hashlib.sha256(clashing_folder.encode()).hexdigest()[:6]
    return dag_id


def error_dag(
    project_name: str, valohai_yaml: Path, error: ValohaiAirflowError, dag_id: str | None = None
) -> DAG:
    text = str(error)
    lines = text.splitlines() or [text]
    with DAG(
        dag_id=dag_id or error_dag_id(project_name),
        dag_display_name=f"⚠ {project_name}: valohai.yaml has {len(lines)} error(s)",
        # the path below the dags folder first, so line and column survive the UI's short description
        description=lines[0].replace(f"{valohai_yaml.parent.parent}/", "")[:200],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        doc_md="# valohai.yaml could not be compiled\n\n"
        f"File: `{valohai_yaml}`\n\n```\n{text}\n```\n\nFix the file; the pipelines appear on the next parse.",
        tags=["valohai", "valohai-error", project_name],
        is_paused_upon_creation=True,
    ) as dag:
        FailWithMessageOperator(task_id="valohai_yaml_error", message=text)
    return dag


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off while the DAGs are built. Compiling and building allocate many
    objects that all survive, and each allocation burst starts a full collection that walks the
    whole heap (Airflow's ~10⁶ objects): 60 % of a 1,000-node compile went there. The garbage a
    parse leaves is collected once it is back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_dags(dags_folder: str | os.PathLike[str] | None = None) -> dict[str, DAG]:
    """Build the DAGs of every project. On a worker, only the project of the DAG being run.

    `dags_folder`: where the projects are; by default the root of the DAG bundle the calling file
    (the loader file) is parsed from (loading/bundle_root.py), else `[core] dags_folder`."""
    if dags_folder is None:
        dags_folder = _callers_root(sys._getframe(1).f_globals.get("__file__"))
    with _gc_paused():
        return _load_dags(dags_folder)


def _callers_root(loader_file: str | None) -> Path:
    from airflow.configuration import conf

    dags_folder = conf.get("core", "dags_folder")
    return Path(dags_folder) if loader_file is None else bundle_root(loader_file, dags_folder, sys.path)


def _load_dags(dags_folder: str | os.PathLike[str]) -> dict[str, DAG]:
    settings = valohai_settings()
    folder = Path(dags_folder)
    wanted = get_parsing_context().dag_id
    dags: dict[str, DAG] = {}
    index = folder_index(settings.plan_cache_dir, folder)
    found = find_valohai_yamls(folder)
    names = {valohai_yaml: project_name_for(valohai_yaml, folder) for valohai_yaml in found}
    clashes = name_clashes(names)
    plans: list[tuple[Path, ProjectPlan]] = []
    for valohai_yaml in found:
        project_name = names[valohai_yaml]
        others = clashes.get(valohai_yaml)
        error_id = error_dag_id(project_name, _below(valohai_yaml, folder) if others else None)
        if wanted and not (wanted.startswith(project_dag_prefix(project_name)) or wanted == error_id):
            continue
        try:
            if others:
                raise ValohaiAirflowError(
                    f"{valohai_yaml}: folders {', '.join(sorted(_below(o, folder) for o in [valohai_yaml, *others]))} "
                    f"are one project name, {project_name!r} (a folder path names its project, '/' as '__'), "
                    "and two projects cannot share their DAG ids and run history: rename one of the folders"
                )
            plan = compile_project(
                valohai_yaml,
                project_name=project_name,
                cache_dir=settings.plan_cache_dir,
                report=lambda warning: log.warning("%s", warning),
                index=index,
            )
        except Exception as error:
            _add_error_dag(dags, settings.strict_loading, project_name, valohai_yaml, error, error_id)
        else:
            plans.append((valohai_yaml, plan))
    queue = default_queue()  # the docs name it: read once for all projects
    taken = dag_id_clashes(
        {
            valohai_yaml: [dag_id_for(plan.name, p.name, p.kind) for p in plan.dag_plans]
            for valohai_yaml, plan in plans
        }
    )
    for valohai_yaml, plan in plans:
        try:
            if valohai_yaml in taken:
                raise ValohaiAirflowError(
                    f"{valohai_yaml}: dag id(s) {'; '.join(taken[valohai_yaml])} would belong to two projects or "
                    "DAGs; rename the folder, the pipeline, or the step or task blueprint"
                )
            dags.update(
                build_dags(
                    plan,
                    docker_url=settings.docker_url,
                    cache_dir=settings.plan_cache_dir,
                    only=wanted,
                    index=index,
                    queue=queue,
                )
            )
        except Exception as error:
            _add_error_dag(
                dags, settings.strict_loading, plan.name, valohai_yaml, error, error_dag_id(plan.name)
            )
    if index is not None:
        index.save(complete=not wanted)
    return dags


def _below(valohai_yaml: Path, folder: Path) -> str:
    """The project folder as a path below the dags folder (`team/churn`)."""
    return os.path.relpath(valohai_yaml.parent, folder)


def _add_error_dag(
    dags: dict[str, DAG], strict: bool, project_name: str, valohai_yaml: Path, error: Exception, dag_id: str
) -> None:
    """The project's error DAG in place of its DAGs (with `strict_loading`, the error is raised)."""
    if strict:
        raise error
    if not isinstance(error, ValohaiAirflowError):
        log.exception("valohai-airflow failed on %s", valohai_yaml, exc_info=error)
        error = ValohaiAirflowError(f"{valohai_yaml}: internal error ({type(error).__name__}): {error}")
    log.error("valohai.yaml of %s could not be compiled:\n%s", project_name, error)
    dag = error_dag(project_name, valohai_yaml, error, dag_id)
    dags[dag.dag_id] = dag
