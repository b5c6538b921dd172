"""A valohai.yaml pipeline inside a hand-written DAG: the tasks of its generated DAG, in a task group.

Airflow teams put generated graphs in their own DAGs (a sensor before the training, a notification
after it), as astronomer-cosmos's `DbtTaskGroup` does beside `DbtDag`. The group holds the very tasks
`factory.build_dag` makes (one builder, `build_pipeline_tasks`), with their docs and links; their ids
carry the group's prefix (`group.node`), which the operators follow to their upstreams' XComs
(task_ids.py). The pipeline's Params join the enclosing DAG's as they are, so a run conf means what
it means for the pipeline's own DAG; a key the DAG already has is an error naming it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup

from valohai_airflow.airflow.docs import default_queue, param_defaults, pipeline_docs
from valohai_airflow.airflow.factory import build_pipeline_tasks
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.conf_keys import REUSE_NODES_KEY, REUSE_RUN_KEY, REUSE_UPSTREAM_OF_KEY
from valohai_airflow.plan.model import PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import task_id_for

if TYPE_CHECKING:
    from airflow.sdk.types import Operator

__all__ = ["ValohaiPipelineTaskGroup"]


REUSE_KEYS = frozenset({REUSE_RUN_KEY, REUSE_NODES_KEY, REUSE_UPSTREAM_OF_KEY})


class ValohaiPipelineTaskGroup(TaskGroup):
    """Pipeline `pipeline` of the valohai.yaml at `project` (a path; relative ones from the working
    directory, so build it from `__file__`), as a task group of the DAG it is created in.

    `group_id` defaults to the pipeline's name made task-id-safe. `node_tasks` maps each node's name
    to the task whose XCom is its manifest (a task node: its mapped executions).
    """

    def __init__(
        self,
        *,
        project: str | os.PathLike[str],
        pipeline: str,
        group_id: str | None = None,
        project_name: str | None = None,
        docker_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        settings = valohai_settings()
        plan = compile_project(project, project_name=project_name, cache_dir=settings.plan_cache_dir)
        chosen = _pipeline(plan, pipeline)
        kwargs.setdefault("tooltip", f"Valohai pipeline {chosen.name!r} of {plan.name}")
        super().__init__(group_id=group_id or task_id_for(chosen.name), **kwargs)
        dag = self.dag
        if dag is None:
            raise ValohaiAirflowError(
                f"ValohaiPipelineTaskGroup of pipeline {chosen.name!r} is not inside a DAG",
                hint="create it within `with DAG(...):` or a @dag function",
            )
        # reusing nodes of an earlier run is a generated DAG's form: a group's nodes are not its own run's
        params = {k: v for k, v in pipeline_params(chosen).items() if k not in REUSE_KEYS}
        clashes = sorted(set(params) & set(dag.params))
        if clashes:
            raise ValohaiAirflowError(
                f"pipeline {chosen.name!r} of {plan.source}: DAG {dag.dag_id!r} already has the Param(s) "
                f"{', '.join(clashes)}, which the pipeline's form needs",
                hint="rename the DAG's own Params; the pipeline's keep their names so a run conf means "
                "the same as for the pipeline's own DAG",
            )
        _, node_docs = pipeline_docs(plan, chosen, param_defaults(params), default_queue())
        with self:
            self.node_tasks: dict[str, Operator] = build_pipeline_tasks(
                plan, chosen, dag, dag.dag_id, docker_url or settings.docker_url, node_docs
            )
        # Added after the tasks exist, as build_dag does: each task constructed under a DAG copies its Params.
        for key, param in params.items():
            dag.params[key] = param


def _pipeline(plan: ProjectPlan, name: str) -> PipelinePlan:
    for pipeline in plan.pipelines:
        if pipeline.name == name:
            return pipeline
    known = ", ".join(repr(p.name) for p in plan.pipelines) or "none"
    raise ValohaiAirflowError(f"{plan.source}: no pipeline {name!r}", hint=f"its pipelines: {known}")
