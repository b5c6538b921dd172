"""A pipeline node's task id where its tasks are: bare in a pipeline's own DAG, behind the group's
prefix (`group.node`) inside a `ValohaiPipelineTaskGroup` of a hand-written DAG."""

from __future__ import annotations

from typing import Any


def sibling_task_id(task: Any, other: str) -> str:
    """Task id `other` (a node's, plan/naming.py: never a dot) in the task group of `task`, a task of
    the same pipeline: Airflow joins group and task ids with dots, so its prefix ends at the last one."""
    prefix, dot, _ = str(task.task_id).rpartition(".")
    return f"{prefix}{dot}{other}"
