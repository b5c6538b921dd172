"""A pipeline's own `parameters:` → PipelineParameterPlans: each target names a parameter of an
existing non-deployment node (`<node>.parameter.<name>`), no two pipeline parameters set one node
parameter, and the default is a value every target takes (a list into a task node is spread).
A target an edge fills too is a warning: the edge wins at run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from valohai_airflow.plan.conf_keys import node_parameter_key
from valohai_airflow.plan.context import PipelineContext
from valohai_airflow.plan.edges import edge_kind
from valohai_airflow.plan.model import EdgeKind, EdgePlan, NodeKind, PipelineParameterPlan
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.parameter import Parameter, ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.pipeline import PipelineParameter


def compile_parameters(
    context: PipelineContext, edges: Sequence[EdgePlan]
) -> tuple[PipelineParameterPlan, ...]:
    """The pipeline parameters' plans, checked against the resolved nodes and the compiled `edges`."""
    parameters = context.pipeline.parameters
    filled_by_edge = {(e.target_node, e.target_key): e for e in edges if e.target_kind is EdgeKind.PARAMETER}
    names = Counter(p.name for p in parameters)
    claimed: dict[tuple[str, str], str] = {}
    plans: list[PipelineParameterPlan] = []
    for parameter in parameters:
        if names[parameter.name] > 1:
            context.error(
                f'pipeline parameter "{parameter.name}" is defined {names[parameter.name]} times',
                parameter.location,
            )
        if not parameter.targets:
            context.warning(f'parameter "{parameter.name}": no targets.', parameter.location)
        targets = []
        for text in parameter.targets:
            target = _parameter_target(context, parameter, text)
            if target is None:
                continue
            if target in claimed and claimed[target] != parameter.name:
                context.error(
                    f'parameter "{parameter.name}" target "{text}": pipeline parameter "{claimed[target]}" '
                    "already sets it; only one pipeline parameter may set a node parameter",
                    parameter.location,
                )
                continue
            claimed[target] = parameter.name
            edge = filled_by_edge.get(target)
            if edge is not None:
                context.warning(
                    f'parameter "{parameter.name}" target "{text}": the edge at line {edge.location.line} '
                    "fills the same parameter and wins at run time",
                    parameter.location,
                )
            targets.append(target)
        plans.append(
            PipelineParameterPlan(
                name=parameter.name,
                targets=tuple(targets),
                default=_plain(parameter.default),
                description=parameter.description,
                location=parameter.location,
                parameter=next((s.parameter(k) for n, k in targets if (s := context.resolved[n].step)), None),
            )
        )
    return tuple(plans)


def _parameter_target(
    context: PipelineContext, parameter: PipelineParameter, text: str
) -> tuple[str, str] | None:
    where = f'parameter "{parameter.name}" target "{text}"'
    parts = text.split(".", 2)
    if len(parts) != 3:
        context.error(f'{where}: write "<node>.parameter.<name>"', parameter.location)
        return None
    node_name, socket_type, key = parts
    kind, plural = edge_kind(socket_type)
    if kind is not EdgeKind.PARAMETER:
        context.error(
            f'{where}: socket type "{socket_type}" is not supported',
            parameter.location,
            'use "parameter"',
        )
        return None
    if plural:
        context.warning(
            f'{where}: "{socket_type}" read as "parameter" (write "{node_parameter_key(node_name, key)}")',
            parameter.location,
        )
    node = context.resolved.get(node_name)
    if node is None:
        context.error(
            f'{where}: the node "{node_name}" does not exist',
            parameter.location,
            did_you_mean(node_name, context.resolved),
        )
        return None
    if node.kind is NodeKind.DEPLOYMENT:
        context.error(
            f'{where}: "{node_name}" is a deployment node, it has no parameters', parameter.location
        )
        return None
    if node.step is not None:
        target = node.step.parameter(key)
        if target is None:
            context.error(
                f'{where}: the parameter "{key}" does not exist in step "{node.step.name}"',
                parameter.location,
                did_you_mean(key, [p.name for p in node.step.parameters]),
            )
            return None
        _check_default(context, parameter, where, target, spread=node.kind is NodeKind.TASK)
    return node_name, key


def _check_default(
    context: PipelineContext, parameter: PipelineParameter, where: str, target: Parameter, *, spread: bool
) -> None:
    """The default must be a value the target takes, or every run that keeps it fails; a list into a
    task node is spread, one execution per item."""
    if parameter.default is None:
        return
    values = (
        list(parameter.default)
        if spread and isinstance(parameter.default, list | tuple)
        else [parameter.default]
    )
    for value in values:
        try:
            coerce_parameter_value(target, value)
        except ParameterValueError as exc:
            context.error(
                f"{where}: default {value!r} does not fit: {'; '.join(exc.problems)}", parameter.location
            )
            return


def _plain(value: Any) -> Any:
    """Lists for tuples so plan values read like the YAML (and JSON) they came from."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
