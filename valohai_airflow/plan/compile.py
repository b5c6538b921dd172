"""valohai.yaml model → checked, resolved plan.

Every semantic check of a pipeline happens in this step (the modules named below), all problems are
collected (never only the first), and each points at file:line:column, with a "did you mean" where a
name is close to a known one.
What valohai-yaml's lint reports at pipeline level is reported with the same meaning; what it misses
is reported too. Errors: unknown step / task blueprint / node / endpoint; override items, edge keys,
pipeline parameter targets and action conditions naming parameters or inputs the step lacks; edge
types that are unknown or do not pair (edges.py); two edges or two pipeline parameters into one
parameter; cycles (named "a → b → a"); pipeline parameter defaults their targets refuse.
Warnings: plural socket types (read as singular), an edge from a socket to itself (dropped: it does
nothing), `commit:` (the dags-folder copy is used), targetless
pipeline parameters, unknown action when/then, unreadable conditions, undeclared environment variables,
an `environment` valohai-airflow.yaml does not map (machines.py), a mount it does not allow (mounts.py).

The checks live by what they check, each a function of the pipeline's context (context.py): size
limits (limits.py), nodes (nodes.py, with their actions in actions.py), edges (edges.py), pipeline
parameters (pipeline_parameters.py); here they are called in order and the plan is put together.
Node overrides are merged into each node's effective step (overrides.py). Steps and task blueprints
run on their own are one-node pipelines compiled here too (standalone.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from valohai_airflow.plan.context import PipelineContext
from valohai_airflow.plan.edges import check_single_valued_targets, compile_edge
from valohai_airflow.plan.graph import find_cycles, topological_order
from valohai_airflow.plan.limits import check_size, pipeline_too_big
from valohai_airflow.plan.machines import resolve_machines
from valohai_airflow.plan.model import EdgePlan, PipelinePlan, ProjectPlan
from valohai_airflow.plan.mounts import warn_mounts
from valohai_airflow.plan.nodes import check_task_ids, compile_node
from valohai_airflow.plan.pipeline_parameters import compile_parameters
from valohai_airflow.plan.sources import pipeline_sources
from valohai_airflow.plan.standalone import compile_standalone
from valohai_airflow.plan.variables import resolve_variables
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics
from valohai_airflow.spec.sidecar import ProjectSettings


def compile_config(
    config: Config,
    *,
    project_name: str,
    root: str,
    content_hash: str,
    settings: ProjectSettings | None = None,
) -> ProjectPlan:
    """Check and resolve every pipeline; raise ValohaiSpecError with ALL errors, keep the warnings.

    `settings` (valohai-airflow.yaml) maps the nodes' environments to their machines (machines.py) and
    gives their run-time environment variables (variables.py)."""
    diagnostics = Diagnostics()
    check_size(config, diagnostics)
    diagnostics.raise_if_errors()
    compiled = [_compile_pipeline(PipelineContext(config, p, diagnostics)) for p in config.pipelines.values()]
    settings = settings or ProjectSettings()
    kept = [p for p in compiled if p is not None]
    standalone = compile_standalone(config, settings, diagnostics, _compile_pipeline)
    resolved = resolve_machines([*kept, *standalone], settings, diagnostics)
    resolved = resolve_variables(config, resolved, settings, diagnostics)
    warn_mounts(config, settings, diagnostics)
    diagnostics.raise_if_errors()
    return ProjectPlan(
        name=project_name,
        root=root,
        source=config.source,
        content_hash=content_hash,
        pipelines=resolved[: len(kept)],
        diagnostics=tuple(diagnostics.warnings),
        standalone=resolved[len(kept) :],
    )


def _compile_pipeline(context: PipelineContext) -> PipelinePlan | None:
    """The pipeline's plan; None when it is too big to build (its nodes are then not checked).
    Nodes resolve first, then edges and pipeline parameters are checked against them."""
    if pipeline_too_big(context):
        return None
    pipeline = context.pipeline
    check_task_ids(context)
    node_plans = {node.name: compile_node(context, node) for node in pipeline.nodes}
    edges = tuple(e for e in (compile_edge(context, edge) for edge in pipeline.edges) if e is not None)
    check_single_valued_targets(context, edges)
    parameters = compile_parameters(context, edges)
    order = _order(context, list(node_plans), edges)
    sources = pipeline_sources(node_plans.values(), edges, parameters)
    return PipelinePlan(
        name=pipeline.name,
        nodes=tuple(replace(node_plans[name], sources=sources[name]) for name in order),
        edges=edges,
        parameters=parameters,
        reuse_executions=pipeline.reuse_executions,
        location=pipeline.location,
    )


def _order(context: PipelineContext, names: list[str], edges: Sequence[EdgePlan]) -> list[str]:
    """The nodes in an order where every edge points forward; a cycle is reported, named by its nodes."""
    pairs = [(e.source_node, e.target_node) for e in edges]
    order = topological_order(names, pairs)
    if order is not None:
        return order
    for cycle in find_cycles(names, pairs):
        closing = next(e for e in edges if (e.source_node, e.target_node) == (cycle[-2], cycle[-1]))
        context.error(
            f"the edges form a cycle: {' → '.join(cycle)}", closing.location, "a pipeline must be acyclic"
        )
    return names
