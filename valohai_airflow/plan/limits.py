"""The limits on the work one project may ask of a parse: nodes per pipeline, nodes and node
parameters per project, parameters per step.

One pipeline becomes one DAG and every project's DAGs load through one file, so a project past
these limits would approach the DAG processor's import timeout and hide every project's DAGs.
"""

from __future__ import annotations

from valohai_airflow.plan.context import PipelineContext
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics, shown
from valohai_airflow.spec.pipeline import DeploymentNode, ExecutionNode, TaskNode

# Nodes of one pipeline (one DAG). A 5,000-node pipeline builds in a few seconds on 2 cores; Airflow's
# own dependency wiring grows with tasks × edges, so far larger ones would approach the DAG processor's
# import timeout and hide every project's DAGs (they all load through one file).
MAX_PIPELINE_NODES = 5000
# One project's pipelines are built in one parse of the loader file, and a project with many pipelines
# (or one pipeline copied under new names with YAML merge keys, from a short file) must not take the
# import timeout either: 10,000 nodes build and serialise in about 11 s on 2 cores. Each parameter of a
# node's step is a Param, a command token and a docs row of that node (100,000 of them: about 6 s),
# so steps and projects have parameter limits too.
MAX_PROJECT_NODES = 10_000
MAX_STEP_PARAMETERS = 20_000
MAX_PROJECT_NODE_PARAMETERS = 100_000


def check_size(config: Config, diagnostics: Diagnostics) -> None:
    """The limits on the work one project may ask of a parse (one pipeline's own: `pipeline_too_big`)."""
    hint = "split the project into several folders, or use task nodes to run one step many times"
    for step in config.steps.values():
        if len(step.parameters) > MAX_STEP_PARAMETERS:
            diagnostics.error(
                f"step {shown(step.name)} has {len(step.parameters):,} parameters; valohai-airflow takes at "
                f"most {MAX_STEP_PARAMETERS:,} per step (each is a Param and a command token of every node "
                "that runs the step)",
                step.location,
            )
    nodes = parameters = 0
    for pipeline in config.pipelines.values():
        if len(pipeline.nodes) > MAX_PIPELINE_NODES:
            continue  # an error of its own, and never built
        nodes += len(pipeline.nodes)
        parameters += sum(_parameter_count(config, node) for node in pipeline.nodes)
        for count, limit, what in (
            (nodes, MAX_PROJECT_NODES, "nodes"),
            (parameters, MAX_PROJECT_NODE_PARAMETERS, "node parameters (each node counts its step's)"),
        ):
            if count > limit:
                diagnostics.error(
                    f"pipeline {shown(pipeline.name)} brings the project's pipelines to {count:,} {what}; "
                    f"valohai-airflow builds at most {limit:,} per project so that the DAG processor parses the "
                    "dags folder within its timeout",
                    pipeline.location,
                    hint,
                )
                return


def pipeline_too_big(context: PipelineContext) -> bool:
    """Whether the pipeline has more nodes than one DAG may (reported); it is then not built."""
    pipeline = context.pipeline
    if len(pipeline.nodes) <= MAX_PIPELINE_NODES:
        return False
    context.error(
        f"has {len(pipeline.nodes):,} nodes; one pipeline becomes one Airflow DAG, and "
        f"valohai-airflow builds at most {MAX_PIPELINE_NODES:,} nodes per pipeline so that the "
        "DAG processor parses the dags folder within its timeout",
        pipeline.location,
        "split it into several pipelines, or use a task node to run one step many times",
    )
    return True


def _parameter_count(config: Config, node: ExecutionNode | TaskNode | DeploymentNode) -> int:
    """How many parameters the node's step has (0 for a deployment or an unknown step or task)."""
    if isinstance(node, DeploymentNode):
        return 0
    step_name = node.step
    if isinstance(node, TaskNode) and node.task is not None:
        task = config.tasks.get(node.task)
        step_name = task.step if task is not None else None
    step = config.steps.get(step_name) if step_name is not None else None
    return len(step.parameters) if step is not None else 0
