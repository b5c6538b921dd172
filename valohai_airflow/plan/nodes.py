"""Pipeline nodes → NodePlans: the step each runs (through its task blueprint), its override merged
in (overrides.py), the blueprint's parameters and values, a deployment node's endpoints, and the
task ids the nodes map to. Each node is recorded in the context as it resolves, for the edges and
pipeline parameters checked after it.
"""

from __future__ import annotations

from valohai_airflow.plan.actions import compile_actions
from valohai_airflow.plan.blueprints import VariantError, expand_blueprint
from valohai_airflow.plan.context import PipelineContext, ResolvedNode
from valohai_airflow.plan.model import NodeKind, NodePlan
from valohai_airflow.plan.naming import builder_task_ids, task_id_for
from valohai_airflow.plan.overrides import effective_step
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.parameter import ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.pipeline import DeploymentNode, ExecutionNode, Override, TaskNode
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task

_ON_CHILD_ERROR = {
    "continue-and-complete": "continue",
    "continue-and-error": "stop-next",
    "stop-all-and-error": "stop-all",
}


def check_task_ids(context: PipelineContext) -> None:
    """Distinct node names could still map to one task id if a hash collided; say so instead of
    letting Airflow fail with a duplicate task; nor may a node take a task id the DAG builder gives a
    task of its own. (spec already rejects duplicate and dotted names.)"""
    task_ids: dict[str, str] = {}
    for node in context.pipeline.nodes:
        task_id = task_id_for(node.name)
        if task_id in task_ids:
            context.error(
                f'nodes "{task_ids[task_id]}" and "{node.name}" map to the same Airflow task id "{task_id}"',
                node.location,
                "rename one of them",
            )
        task_ids[task_id] = node.name
    taken = builder_task_ids(list(task_ids))
    for node in context.pipeline.nodes:
        task_id = task_id_for(node.name)
        if task_id in taken:
            context.error(
                f'node "{node.name}" maps to the Airflow task id "{task_id}", which is {taken[task_id]}',
                node.location,
                "rename the node",
            )


def compile_node(context: PipelineContext, node: ExecutionNode | TaskNode | DeploymentNode) -> NodePlan:
    """The node's plan; the node is resolved in `context` (its kind and effective step)."""
    config = context.config
    if isinstance(node, DeploymentNode):
        _check_endpoints(context, node)
        context.resolved[node.name] = ResolvedNode(NodeKind.DEPLOYMENT, None)
        return NodePlan(
            name=node.name,
            task_id=task_id_for(node.name),
            kind=NodeKind.DEPLOYMENT,
            step=None,
            on_error=node.on_error,
            actions=compile_actions(context, node, None),
            deployment=node.deployment,
            endpoints=tuple(node.endpoints),
            endpoint_specs=tuple(config.endpoints[e] for e in node.endpoints if e in config.endpoints),
            aliases=tuple(node.aliases),
            location=node.location,
        )
    kind = NodeKind.TASK if isinstance(node, TaskNode) else NodeKind.EXECUTION
    blueprint = config.tasks.get(node.task) if isinstance(node, TaskNode) and node.task else None
    base = _step_of(context, node)
    step = None
    if base is not None:
        _check_override(context, node, base, node.override)
        step = effective_step(
            base,
            node.override,
            lambda message, at: context.error(f'node "{node.name}" override: {message}', at),
        )
        if isinstance(node, TaskNode) and blueprint is not None:
            _check_blueprint(context, node, blueprint, step)
    if node.commit:
        context.warning(
            f'node "{node.name}": `commit: {node.commit}` is ignored; valohai-airflow runs the step '
            "from the copy of the repository in the dags folder",
            node.location,
        )
    context.resolved[node.name] = ResolvedNode(kind, step)
    return NodePlan(
        name=node.name,
        task_id=task_id_for(node.name),
        kind=kind,
        step=step,
        on_error=_on_error(node, blueprint),
        edge_merge_mode=node.edge_merge_mode,
        actions=compile_actions(context, node, step),
        blueprint=blueprint,
        location=node.location,
    )


def _step_of(context: PipelineContext, node: ExecutionNode | TaskNode) -> Step | None:
    """The step a node runs (through its task blueprint if it has one); None after an error."""
    config = context.config
    where = f'node "{node.name}"'
    step_name = node.step
    if isinstance(node, TaskNode) and node.task is not None:
        task = config.tasks.get(node.task)
        if task is None:
            context.error(
                f'{where}: task blueprint "{node.task}" does not exist',
                node.location,
                did_you_mean(node.task, config.tasks),
            )
            return None
        step_name = task.step
        where = f'{where}, task blueprint "{task.name}"'
    assert step_name is not None, "spec gives a task node exactly one of step and task"
    step = config.steps.get(step_name)
    if step is None:
        elsewhere = ""
        if node.commit:
            elsewhere = (
                f" (the node takes it from commit {node.commit!r}, but valohai-airflow runs steps from "
                "the dags-folder copy of this repository)"
            )
        context.error(
            f'{where}: step "{step_name}" does not exist{elsewhere}',
            node.location,
            did_you_mean(step_name, config.steps),
        )
    return step


def _check_override(
    context: PipelineContext, node: ExecutionNode | TaskNode, step: Step, override: Override | None
) -> None:
    if override is None:
        return
    where = f'node "{node.name}" override'
    for kind, items, known in (
        ("parameter", override.parameters, [p.name for p in step.parameters]),
        ("input", override.inputs, [i.name for i in step.inputs]),
    ):
        for item in items:
            if item.name not in known:
                context.error(
                    f'{where}: {kind} "{item.name}" does not exist in step "{step.name}"',
                    item.location,
                    did_you_mean(item.name, known),
                )
    if override.runtime_config_preset and not override.environment:
        context.error(
            f'{where}: missing "environment"; when overriding the runtime config preset, '
            "also override the environment",
            override.location,
        )


def _check_blueprint(context: PipelineContext, node: TaskNode, task: Task, step: Step) -> None:
    """A blueprint varies parameters by name (a name the step lacks would be silently ignored),
    gives between 1 and MAX_VARIANTS executions, and every value it gives fits its parameter."""
    known = [p.name for p in step.parameters]
    named = [(p.name, p.location) for p in task.parameters]
    named += [(name, task.location) for parameter_set in task.parameter_sets for name in parameter_set]
    unknown = False
    for name, location in named:
        if name not in known:
            unknown = True
            context.error(
                f'node "{node.name}": task blueprint "{task.name}" sets parameter "{name}", '
                f'which step "{step.name}" does not have',
                location,
                did_you_mean(name, known),
            )
    if task.parameter_sets and task.type != "manual_search":
        context.warning(
            f'node "{node.name}": task blueprint "{task.name}" is {task.type}, so its parameter-sets '
            "are not used (they are for manual_search)",
            task.location,
        )
    try:
        variants = expand_blueprint(task, seed=0)
    except VariantError as exc:
        context.error(f'node "{node.name}": {exc.message}', exc.location or task.location)
        return
    if unknown:
        return
    locations = {p.name: p.location for p in task.parameters}
    for name in dict.fromkeys(n for variant in variants for n in variant):
        target = step.parameter(name)
        assert target is not None
        for value in (variant[name] for variant in variants if name in variant):
            try:
                coerce_parameter_value(target, value)
            except ParameterValueError as exc:
                context.error(
                    f'node "{node.name}": task blueprint "{task.name}" gives parameter "{name}" the value '
                    f"{value!r}: {'; '.join(exc.problems)}",
                    locations.get(name, task.location),
                )
                break


def _check_endpoints(context: PipelineContext, node: DeploymentNode) -> None:
    for endpoint in node.endpoints:
        if endpoint not in context.config.endpoints:
            context.error(
                f'deployment node "{node.name}": endpoint "{endpoint}" does not exist; '
                "endpoints are defined by top-level `endpoint:` items",
                node.location,
                did_you_mean(endpoint, context.config.endpoints),
            )


def _on_error(node: ExecutionNode | TaskNode, blueprint: Task | None) -> str:
    """The node's own `on-error` when written; else its blueprint's `on-child-error` read as one."""
    if "on_error" in node.model_fields_set or blueprint is None or blueprint.on_child_error is None:
        return node.on_error
    return _ON_CHILD_ERROR[blueprint.on_child_error]
