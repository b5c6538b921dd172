"""Airflow ids for Valohai names: readable, stable across edits, and unique.

Airflow accepts `[A-Za-z0-9_.-]` (its KEY_REGEX is `^[\\w.-]+$`, and `..` is refused) up to 250
characters. We stay with ASCII letters, digits, `_` and `-`: a name that already fits keeps its
spelling, so the common case reads exactly like valohai.yaml. Any other name is folded to ASCII
(`é` → `e`), every run of other characters becomes one `_`, and a short hash of the ORIGINAL name is
appended. The hash depends only on the name itself, so an id never changes when other nodes are
added, renamed or reordered, and two different names cannot end up with one id unless a hash
collides (the compiler checks ids are unique within a pipeline and reports it if so).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_ID = 250
_HASH_LENGTH = 6
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PROJECT_LIMIT = 100
_SEPARATOR = "__"


def _safe(name: str, limit: int, fallback: str) -> str:
    """`name` unchanged when it is already a safe id that fits `limit`; otherwise readable + hash."""
    if len(name) <= limit and not _UNSAFE.search(name) and name:
        return name
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", folded).strip("_") or fallback
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    return f"{cleaned[: limit - _HASH_LENGTH - 1]}_{digest}"


#: Task ids the DAG builder gives tasks of its own, beside the nodes' (a node may not take one).
APPROVAL_SUFFIX = "__approval"  # `<node>__approval`: a node's require-approval gate
VARIANTS_SUFFIX = "__variants"  # `<node>__variants`: a task node's variants
FINISHED_TASK_ID = "valohai__finished"  # the task that says a pipeline finished (an Asset event)


def builder_task_ids(node_task_ids: list[str]) -> dict[str, str]:
    """Each task id the builder may add for these nodes → what it is (for the clash check)."""
    ids = {FINISHED_TASK_ID: "the pipeline's finished task"}
    for task_id in node_task_ids:
        ids[task_id + APPROVAL_SUFFIX] = f'the approval task of task "{task_id}"'
        ids[task_id + VARIANTS_SUFFIX] = f'the variants task of task "{task_id}"'
    return ids


def task_id_for(node_name: str) -> str:
    """The Airflow task id of a pipeline node."""
    return _safe(node_name, MAX_ID, "node")


def project_dag_prefix(project_name: str) -> str:
    """What every dag id of one project starts with (the loader uses it to find a project's DAGs)."""
    return _safe(project_name, _PROJECT_LIMIT, "project") + _SEPARATOR


def dag_id_for(project_name: str, pipeline_name: str, kind: str = "pipeline") -> str:
    """`<project>__<pipeline>`: the DAG of one pipeline of one project folder; `<project>__step__<step>`
    and `<project>__task__<blueprint>` (`kind` "step", "task"): a step or task blueprint run on its own."""
    prefix = project_dag_prefix(project_name)
    if kind != "pipeline":
        prefix += kind + _SEPARATOR
    return prefix + _safe(pipeline_name, MAX_ID - len(prefix), kind)
