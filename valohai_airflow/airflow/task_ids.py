"""A pipeline node's task id where its tasks are: bare in a pipeline's own DAG, behind the group's
prefix (`group.node`) inside a `ValohaiPipelineTaskGroup` of a hand-written DAG."""

from __future__ import annotations

from typing import Any

from valohai_airflow.plan.model import DagKind


def sibling_task_id(task: Any, other: str) -> str:
    """Task id `other` (a node's, plan/naming.py: never a dot) in the task group of `task`, a task of
    the same pipeline: Airflow joins group and task ids with dots, so its prefix ends at the last one."""
    prefix, dot, _ = str(task.task_id).rpartition(".")
    return f"{prefix}{dot}{other}"


def pipeline_task_ids(task: Any) -> list[str]:
    """The task ids of the pipeline `task` is a node of, its own included: what its on-error and
    stop actions may skip. Every task of a pipeline's own DAG; inside a hand-written DAG only those
    behind its group's prefix (the DAG author's tasks are no node's to stop); for a step or task
    blueprint run on its own (a one-node pipeline, as `ValohaiStepOperator` runs), its own."""
    dag = task.get_dag()
    assert dag is not None
    pipeline = getattr(task, "pipeline", None)  # an approval gate has none: it is in a pipeline's group
    if pipeline is not None and pipeline.kind is not DagKind.PIPELINE:
        return [task.task_id]
    prefix, dot, _ = str(task.task_id).rpartition(".")
    return [t for t in dag.task_ids if t.startswith(prefix + dot)]
