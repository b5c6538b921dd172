"""Plan → Airflow: one DAG per pipeline, one task per node (a task node: its variants task and its
mapped executions), one dependency per edge."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator

from valohai_airflow.airflow.control import apply_control
from valohai_airflow.airflow.deployment import ValohaiDeploymentOperator
from valohai_airflow.airflow.docs import document, node_doc_md, param_defaults, pipeline_doc_md
from valohai_airflow.airflow.operators import FailWithMessageOperator, ValohaiExecutionOperator
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.airflow.schedules import START_DATE, dag_arguments, retry_arguments, schedule_problem
from valohai_airflow.airflow.variants import MAP_INDEX_TEMPLATE, ValohaiVariantsOperator
from valohai_airflow.plan.model import NodeKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for

if TYPE_CHECKING:
    from airflow.sdk.types import Operator

__all__ = ["START_DATE", "build_dag", "build_dags"]


def _node_tasks(
    project: ProjectPlan, pipeline: PipelinePlan, node: NodePlan, dag_id: str, docker_url: str | None
) -> tuple[BaseOperator, Operator]:
    """(the task that starts the node, the task whose XCom downstream nodes read): the same one,
    except for a task node: its `__variants` task, then its mapped executions."""
    if node.kind is NodeKind.DEPLOYMENT:
        deployment = ValohaiDeploymentOperator(
            project_name=project.name,
            pipeline=pipeline,
            node=node,
            docker_url=docker_url,
            project_root=project.root,
            serving=project.settings.deployment(node.deployment or ""),
        )
        return deployment, deployment
    arguments: dict[str, Any] = {
        "project_name": project.name,
        "project_root": project.root,
        "pipeline": pipeline,
        "node": node,
        "dag_key": dag_id,
        "docker_url": docker_url,
        **retry_arguments(project.settings, node),
        **node.machine.operator_arguments,  # queue, pool, pool_slots of the node's environment
    }
    if node.kind is not NodeKind.TASK:
        task = ValohaiExecutionOperator(**arguments)
        return task, task
    variants = ValohaiVariantsOperator(pipeline=pipeline, node=node)
    if node.blueprint and node.blueprint.maximum_queued_executions:
        arguments["max_active_tis_per_dagrun"] = node.blueprint.maximum_queued_executions
    executions = ValohaiExecutionOperator.partial(
        task_id=node.task_id,
        task_display_name=node.name,
        map_index_template=MAP_INDEX_TEMPLATE,
        **arguments,
    ).expand(variant=variants.output)
    return variants, executions


def build_dag(project: ProjectPlan, pipeline: PipelinePlan, *, docker_url: str | None = None) -> DAG:
    dag_id = dag_id_for(project.name, pipeline.name)
    params = pipeline_params(pipeline)
    problem = schedule_problem(pipeline, project.settings, params)
    if problem:
        return _unschedulable_dag(dag_id, pipeline, problem)
    arguments = {"description": f"Valohai pipeline {pipeline.name!r} of {project.name}"}
    with DAG(
        dag_id=dag_id,
        dag_display_name=pipeline.name,
        params=params,
        doc_md=pipeline_doc_md(project, pipeline),
        **{**arguments, **dag_arguments(project, pipeline)},
    ) as dag:
        entries: dict[str, BaseOperator] = {}
        results: dict[str, Operator] = {}
        for node in pipeline.nodes:
            entries[node.name], results[node.name] = _node_tasks(project, pipeline, node, dag_id, docker_url)
            document(results[node.name], node_doc_md(pipeline, node, param_defaults(params)))
        for edge in pipeline.edges:
            upstream, downstream = results[edge.source_node], entries[edge.target_node]
            if upstream not in downstream.upstream_list:
                upstream >> downstream
        apply_control(dag, pipeline, entries, timedelta(seconds=project.settings.approval.timeout_seconds))
    return dag


def _unschedulable_dag(dag_id: str, pipeline: PipelinePlan, problem: str) -> DAG:
    """The pipeline's own DAG id, showing why its schedule cannot work (its siblings still load)."""
    with DAG(
        dag_id=dag_id,
        dag_display_name=f"⚠ {pipeline.name}: cannot be scheduled",
        description=problem[:200],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        doc_md=f"# {pipeline.name} cannot be scheduled\n\n{problem}",
        tags=["valohai", "valohai-error"],
        is_paused_upon_creation=True,
    ) as dag:
        FailWithMessageOperator(task_id="valohai_schedule_error", message=problem)
    return dag


def build_dags(project: ProjectPlan, *, docker_url: str | None = None) -> dict[str, DAG]:
    return {
        dag.dag_id: dag for dag in (build_dag(project, p, docker_url=docker_url) for p in project.pipelines)
    }
