"""Node actions (`when`, `if`, `then`) checked at compile time: unknown `when`/`then` values and
unreadable conditions are warnings (Valohai does not check them either), a condition on a parameter
the step lacks is an error. How actions fire at run time: control.py; how a condition reads and
evaluates: conditions.py.
"""

from __future__ import annotations

from valohai_airflow.plan.conditions import ConditionSyntaxError, parse_condition
from valohai_airflow.plan.context import PipelineContext
from valohai_airflow.plan.model import ActionPlan
from valohai_airflow.spec.diagnostics import Location
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.pipeline import DeploymentNode, ExecutionNode, TaskNode
from valohai_airflow.spec.step import Step

# valohai-yaml node_action.py; `require-approval` is documented by Valohai and implemented by us.
KNOWN_WHENS = ("node-starting", "node-complete", "node-error")
KNOWN_THENS = ("noop", "stop-pipeline", "error-pipeline", "require-approval")


def compile_actions(
    context: PipelineContext, node: ExecutionNode | TaskNode | DeploymentNode, step: Step | None
) -> tuple[ActionPlan, ...]:
    """The node's actions as written, after checking them against its effective `step`."""
    plans: list[ActionPlan] = []
    for action in node.actions:
        for when in action.when:
            if when not in KNOWN_WHENS:
                context.warning(
                    f'node "{node.name}": action "when" value "{when}" is not well-known; '
                    "the action might never be triggered",
                    action.location,
                    did_you_mean(when, KNOWN_WHENS),
                )
        for then in action.then:
            if then not in KNOWN_THENS:
                context.warning(
                    f'node "{node.name}": action "then" value "{then}" is not well-known; '
                    "the action might do nothing",
                    action.location,
                    did_you_mean(then, KNOWN_THENS),
                )
        for text in action.if_:
            _check_condition(context, node, step, text, action.location)
        plans.append(
            ActionPlan(when=tuple(action.when), then=tuple(action.then), condition=tuple(action.if_))
        )
    return tuple(plans)


def _check_condition(
    context: PipelineContext,
    node: ExecutionNode | TaskNode | DeploymentNode,
    step: Step | None,
    text: str,
    location: Location,
) -> None:
    """An unreadable condition never holds (warning, like Valohai, which does not check them); a
    condition on a parameter the step lacks is a mistake (error)."""
    try:
        condition = parse_condition(text)
    except ConditionSyntaxError as exc:
        context.warning(f'node "{node.name}": action condition: {exc}; it never holds', location)
        return
    if condition.source == "parameter" and step is not None and step.parameter(condition.key) is None:
        context.error(
            f'node "{node.name}": action condition "{text}": step "{step.name}" has no parameter "{condition.key}"',
            location,
            did_you_mean(condition.key, [p.name for p in step.parameters]),
        )
