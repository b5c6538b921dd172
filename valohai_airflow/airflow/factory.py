"""Plan → Airflow: one DAG per pipeline, one task per node, one dependency per edge."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, BaseOperator

from valohai_airflow.airflow.docs import pipeline_doc_md
from valohai_airflow.airflow.operators import FailWithMessageOperator, ValohaiExecutionOperator
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.plan.model import NodeKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def _node_task(
    project: ProjectPlan, pipeline: PipelinePlan, node: NodePlan, dag_id: str, docker_url: str | None
) -> BaseOperator:
    """Execution nodes, and task nodes as one execution with the node's values until fan-out lands."""
    if node.kind is NodeKind.DEPLOYMENT:
        return FailWithMessageOperator(
            task_id=node.task_id,
            task_display_name=node.name,
            message=f"node {node.name!r}: deployment nodes do not run in valohai-airflow yet; "
            "mark this task success to let the rest of the pipeline go on",
        )
    return ValohaiExecutionOperator(
        project_name=project.name,
        project_root=project.root,
        pipeline=pipeline,
        node=node,
        dag_key=dag_id,
        docker_url=docker_url,
    )


def build_dag(project: ProjectPlan, pipeline: PipelinePlan, *, docker_url: str | None = None) -> DAG:
    dag_id = dag_id_for(project.name, pipeline.name)
    with DAG(
        dag_id=dag_id,
        dag_display_name=pipeline.name,
        description=f"Valohai pipeline {pipeline.name!r} of {project.name}",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        params=pipeline_params(pipeline),
        doc_md=pipeline_doc_md(project, pipeline),
        tags=["valohai", project.name],
    ) as dag:
        tasks = {
            node.name: _node_task(project, pipeline, node, dag_id, docker_url) for node in pipeline.nodes
        }
        for edge in pipeline.edges:
            upstream, downstream = tasks[edge.source_node], tasks[edge.target_node]
            if upstream not in downstream.upstream_list:
                upstream >> downstream
    return dag


def build_dags(project: ProjectPlan, *, docker_url: str | None = None) -> dict[str, DAG]:
    return {
        dag.dag_id: dag for dag in (build_dag(project, p, docker_url=docker_url) for p in project.pipelines)
    }
