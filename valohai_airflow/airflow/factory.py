"""Plan → Airflow: one DAG per pipeline (and per step and task blueprint run on its own: a one-node
pipeline, plan/standalone.py), one task per node (a task node: its variants task and its
mapped executions), one dependency per edge."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator, Param

from valohai_airflow.airflow.control_tasks import apply_control
from valohai_airflow.airflow.dag_parts import project_parts
from valohai_airflow.airflow.deployment import ValohaiDeploymentOperator
from valohai_airflow.airflow.docs import PipelineDocs, default_queue, param_defaults, pipeline_docs
from valohai_airflow.airflow.operators import FailWithMessageOperator, ValohaiExecutionOperator
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.airflow.pipeline_finished import add_finished_task
from valohai_airflow.airflow.schedules import START_DATE, dag_arguments, retry_arguments, schedule_problem
from valohai_airflow.airflow.variants import MAP_INDEX_TEMPLATE, ValohaiVariantsOperator
from valohai_airflow.loading.folder_index import FolderIndex
from valohai_airflow.plan.model import DagKind, NodeKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for

if TYPE_CHECKING:
    from airflow.sdk.types import Operator

__all__ = ["START_DATE", "build_dag", "build_dags", "build_pipeline_tasks"]


def _node_tasks(
    project: ProjectPlan,
    pipeline: PipelinePlan,
    node: NodePlan,
    dag_id: str,
    docker_url: str | None,
    doc_md: str,
) -> tuple[BaseOperator, Operator]:
    """(the task that starts the node, the task whose XCom downstream nodes read): the same one,
    except for a task node: its `__variants` task, then its mapped executions (which carry `doc_md`)."""
    if node.kind is NodeKind.DEPLOYMENT:
        deployment = ValohaiDeploymentOperator(
            project_name=project.name,
            pipeline=pipeline,
            node=node,
            docker_url=docker_url,
            project_root=project.root,
            serving=project.settings.deployment(node.deployment or ""),
            network=project.settings.network,
            doc_md=doc_md,
        )
        return deployment, deployment
    arguments: dict[str, Any] = {
        "project_name": project.name,
        "project_root": project.root,
        "pipeline": pipeline,
        "node": node,
        "dag_key": dag_id,
        "docker_url": docker_url,
        "doc_md": doc_md,
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


def build_pipeline_tasks(
    project: ProjectPlan,
    pipeline: PipelinePlan,
    dag: DAG,
    dag_key: str,
    docker_url: str | None,
    node_docs: Mapping[str, str],
) -> dict[str, Operator]:
    """The pipeline's tasks, wired, in the current DAG or task group (a pipeline's own DAG, or
    `ValohaiPipelineTaskGroup` in a hand-written one); by node name, the task whose XCom is its result."""
    entries: dict[str, BaseOperator] = {}
    results: dict[str, Operator] = {}
    for node in pipeline.nodes:  # topological order: a node's upstreams exist before it
        entries[node.name], results[node.name] = _node_tasks(
            project, pipeline, node, dag_key, docker_url, node_docs[node.name]
        )
        # Wired as each node is added, one call per node: Airflow hashes the DAG (all its task ids)
        # once per task it is given, so a smaller DAG and fewer calls keep that term small.
        upstreams = [results[name] for name in pipeline.upstreams(node.name)]
        if upstreams:
            entries[node.name].set_upstream(upstreams)
    apply_control(dag, pipeline, entries, timedelta(seconds=project.settings.approval.timeout_seconds))
    return results


def build_dag(
    project: ProjectPlan,
    pipeline: PipelinePlan,
    *,
    docker_url: str | None = None,
    params: dict[str, Param] | None = None,
    docs: PipelineDocs | None = None,
) -> DAG:
    """`params` and `docs`: the pipeline's Params and task docs, when the caller has them already."""
    dag_id = dag_id_for(project.name, pipeline.name, pipeline.kind)
    params = pipeline_params(pipeline) if params is None else params
    problem = schedule_problem(pipeline, project.settings, params)
    if problem:
        return _unschedulable_dag(dag_id, pipeline, problem)
    if docs is None:
        docs = pipeline_docs(project, pipeline, param_defaults(params), default_queue())
    dag_doc, node_docs = docs
    what = {DagKind.STEP: "step", DagKind.TASK: "task blueprint"}.get(pipeline.kind, "pipeline")
    arguments = {"description": f"Valohai {what} {pipeline.name!r} of {project.name}"}
    with DAG(
        dag_id=dag_id,
        dag_display_name=pipeline.name,
        doc_md=dag_doc,
        **{**arguments, **dag_arguments(project, pipeline)},
    ) as dag:
        build_pipeline_tasks(project, pipeline, dag, dag_id, docker_url, node_docs)
        if pipeline.kind is DagKind.PIPELINE and project.settings.emits_finished(pipeline.name):
            add_finished_task(dag, project.name, pipeline)  # `after: {pipeline: …}` triggers
    # Set after the tasks exist: every operator constructed under a DAG deep-copies the DAG's whole
    # ParamsDict into its own, which costs nodes × params. Tasks read them at run time from the DAG
    # (process_params merges dag.params, then the task's own), the trigger form and run-conf checks too.
    dag.params = params  # type: ignore[assignment]  # the DAG's converter makes the ParamsDict (once)
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


def build_dags(
    project: ProjectPlan,
    *,
    docker_url: str | None = None,
    cache_dir: Path | None = None,
    only: str | None = None,
    index: FolderIndex | None = None,
    queue: str | None = None,
) -> dict[str, DAG]:
    """`cache_dir`, `index`: where the Params and task docs of this plan are kept between parses (the
    plan cache's; a loader's folder index keeps them beside the plan). `queue`: Airflow's default
    queue, when the caller has read it already (a loader, once for all projects).
    `only`: the one DAG id a worker runs (a project of forty steps need not build forty DAGs there)."""
    plans = project.dag_plans  # the pipelines, and the steps and blueprints run on their own
    if only is not None:
        plans = tuple(p for p in plans if dag_id_for(project.name, p.name, p.kind) == only) or plans
    if not plans:
        return {}
    parts = project_parts(project, plans, cache_dir, index, queue)
    dags = (
        build_dag(project, p, docker_url=docker_url, params=parts[p.title][0], docs=parts[p.title][1])
        for p in plans
    )
    return {dag.dag_id: dag for dag in dags}
