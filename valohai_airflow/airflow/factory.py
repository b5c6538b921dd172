"""Plan → Airflow: one DAG per pipeline, one task per node, one dependency per edge."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, BaseOperator

from valohai_airflow.airflow.control import apply_control
from valohai_airflow.airflow.deployment import ValohaiDeploymentOperator
from valohai_airflow.airflow.docs import document, node_doc_md, param_defaults, pipeline_doc_md
from valohai_airflow.airflow.operators import FailWithMessageOperator, ValohaiExecutionOperator
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.airflow.schedules import START_DATE, dag_arguments, retry_arguments, schedule_problem
from valohai_airflow.plan.model import NodeKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for

__all__ = ["START_DATE", "build_dag", "build_dags"]


def _node_task(
    project: ProjectPlan, pipeline: PipelinePlan, node: NodePlan, dag_id: str, docker_url: str | None
) -> BaseOperator:
    """Execution nodes, and task nodes as one execution with the node's values until fan-out lands."""
    if node.kind is NodeKind.DEPLOYMENT:
        return ValohaiDeploymentOperator(
            project_name=project.name,
            pipeline=pipeline,
            node=node,
            docker_url=docker_url,
            project_root=project.root,
            serving=project.settings.deployment(node.deployment or ""),
        )
    return ValohaiExecutionOperator(
        project_name=project.name,
        project_root=project.root,
        pipeline=pipeline,
        node=node,
        dag_key=dag_id,
        docker_url=docker_url,
        **retry_arguments(project.settings, node),
    )


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
        tasks = {
            node.name: _node_task(project, pipeline, node, dag_id, docker_url) for node in pipeline.nodes
        }
        for node in pipeline.nodes:
            document(tasks[node.name], node_doc_md(pipeline, node, param_defaults(params)))
        for edge in pipeline.edges:
            upstream, downstream = tasks[edge.source_node], tasks[edge.target_node]
            if upstream not in downstream.upstream_list:
                upstream >> downstream
        apply_control(dag, pipeline, tasks, timedelta(seconds=project.settings.approval.timeout_seconds))
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
