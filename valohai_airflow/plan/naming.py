"""Airflow ids for Valohai names: readable, stable across edits, and unique.

Airflow allows [A-Za-z0-9_.-] up to 250 characters in ids. Names that fit keep their spelling
(dots become `_` in dag ids, which join project and pipeline with `__`); other characters become
`_` and a short hash of the original is appended so that two names never map to one id.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_ID = 250


def _safe(name: str, limit: int) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("_") or "x"
    if cleaned == name and len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    return f"{cleaned[: limit - 7]}_{digest}"


def task_id_for(node_name: str) -> str:
    return _safe(node_name, MAX_ID)


def project_dag_prefix(project_name: str) -> str:
    return _safe(project_name, 100) + "__"


def dag_id_for(project_name: str, pipeline_name: str) -> str:
    return project_dag_prefix(project_name) + _safe(pipeline_name, MAX_ID - 102)
