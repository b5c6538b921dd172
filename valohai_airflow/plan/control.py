"""Pipeline control without Airflow: which `on-error` a node's dependents see, and which node
actions fire at a moment of a node's life.

Valohai's `on-error` (stop-all, stop-next, continue, retry) and node `actions` (`when`, `if`,
`then`) are decided here from plain data, so the same rules hold wherever a node runs; the
airflow layer (`airflow/control_tasks.py`) maps the decisions onto trigger rules, skips and failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from valohai_airflow.plan.conditions import ConditionSyntaxError, parse_condition
from valohai_airflow.plan.model import ActionPlan, NodePlan, PipelinePlan

STOP_ALL = "stop-all"
STOP_NEXT = "stop-next"
CONTINUE = "continue"
RETRY = "retry"

NODE_STARTING = "node-starting"
NODE_COMPLETE = "node-complete"
NODE_ERROR = "node-error"

STOP_PIPELINE = "stop-pipeline"
ERROR_PIPELINE = "error-pipeline"
REQUIRE_APPROVAL = "require-approval"


@dataclass(frozen=True, slots=True)
class Decision:
    """One `then` of an action whose `when` matched and whose `if` holds, with why it fired."""

    then: str
    reason: str


def continue_upstreams(pipeline: PipelinePlan, node: NodePlan) -> tuple[str, ...]:
    """Upstream nodes with `on-error: continue`: their failure must not block this node."""
    return tuple(n for n in pipeline.upstreams(node.name) if pipeline.node(n).on_error == CONTINUE)


def blocking_upstreams(pipeline: PipelinePlan, node: NodePlan) -> tuple[str, ...]:
    """Upstream nodes whose failure blocks this node (every on-error but continue)."""
    return tuple(n for n in pipeline.upstreams(node.name) if pipeline.node(n).on_error != CONTINUE)


def stops_everything(node: NodePlan) -> bool:
    """A final failure of this node stops the whole pipeline (stop-all, and retry once retries run out)."""
    return node.on_error in (STOP_ALL, RETRY)


def stops_siblings(node: NodePlan) -> bool:
    """A failed execution of a task node skips its siblings that have not started: stop-all (or
    retry, once its retries run out), unless the blueprint's `on-child-error` lets them go on."""
    on_child_error = node.blueprint.on_child_error if node.blueprint else None
    if on_child_error is not None:
        return on_child_error == "stop-all-and-error"
    return stops_everything(node)


def approval_actions(node: NodePlan) -> tuple[ActionPlan, ...]:
    """The node's `require-approval` actions on node-starting (the only moment an approval gates)."""
    return tuple(a for a in node.actions if NODE_STARTING in a.when and REQUIRE_APPROVAL in a.then)


@dataclass(frozen=True, slots=True)
class ActionEvaluation:
    """One action checked at a moment of a node's life: whether its `if` holds, what each condition
    saw, and what was decided; `line` is what the task log says about it."""

    action: ActionPlan
    holds: bool
    details: tuple[str, ...]
    missing: bool  # some condition named a key the node does not have

    def line(self, node: NodePlan, when: str) -> str:
        thens = ", ".join(self.action.then)
        seen = "; ".join(self.details) if self.details else "no `if`"
        decided = f"then {thens}" if self.holds else f"{thens} not taken"
        return f"node {node.name!r}: action on {when}: {seen}: {decided}"


def evaluate_action(
    action: ActionPlan, metadata: Mapping[str, Any], parameters: Mapping[str, Any]
) -> ActionEvaluation:
    """All of the action's `if` conditions hold (no `if`: always); every condition is checked, so the
    log shows each value. An unreadable condition never holds (the compiler already warned with its
    line)."""
    holds, missing, details = True, False, []
    for text in action.condition:
        try:
            evaluation = parse_condition(text).evaluate(metadata, parameters)
        except ConditionSyntaxError as error:
            holds = False
            details.append(f"{error}, so it does not hold")
            continue
        holds = holds and evaluation.holds
        missing = missing or evaluation.missing
        details.append(evaluation.detail)
    return ActionEvaluation(action, holds, tuple(details), missing)


def evaluate(
    node: NodePlan, when: str, metadata: Mapping[str, Any], parameters: Mapping[str, Any]
) -> list[ActionEvaluation]:
    """Every action of `node` whose `when` is this moment, checked, in file order."""
    return [evaluate_action(a, metadata, parameters) for a in node.actions if when in a.when]


def decide(
    node: NodePlan, when: str, metadata: Mapping[str, Any], parameters: Mapping[str, Any]
) -> list[Decision]:
    """The `then` values that fire for `node` at moment `when`, in file order."""
    return decisions(node, when, evaluate(node, when, metadata, parameters))


def decisions(node: NodePlan, when: str, evaluations: list[ActionEvaluation]) -> list[Decision]:
    """The `then` values of the evaluated actions that hold, each with why it fired."""
    fired: list[Decision] = []
    for evaluation in evaluations:
        if not evaluation.holds:
            continue
        condition = evaluation.action.condition
        because = f" because {' and '.join(condition)}" if condition else ""
        for then in evaluation.action.then:
            fired.append(Decision(then, f"node {node.name!r}: action on {when}{because}: {then}"))
    return fired


def first(decisions: list[Decision], *thens: str) -> Decision | None:
    """The first decision that is one of `thens`."""
    return next((d for d in decisions if d.then in thens), None)
