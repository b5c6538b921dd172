"""The final value of every parameter of one node: defaults ← overrides ← pipeline parameters ← run conf ← edges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.plan.params import node_parameter_key
from valohai_airflow.spec.parameter import coerce_parameter_value


class NodeParameterError(ValohaiAirflowError):
    """A parameter value a node cannot run with; the message names node, parameter and value."""


def resolve_parameters(
    pipeline: PipelinePlan,
    node: NodePlan,
    conf: Mapping[str, Any],
    edge_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if node.step is None:
        return {}
    values: dict[str, Any] = {p.name: p.default for p in node.step.parameters}
    for pipeline_parameter in pipeline.parameters:
        for target_node, target_parameter in pipeline_parameter.targets:
            if target_node == node.name and target_parameter in values:
                values[target_parameter] = conf.get(pipeline_parameter.name, pipeline_parameter.default)
    for name in values:
        key = node_parameter_key(node.name, name)
        if key in conf:
            values[name] = conf[key]
    values.update(edge_values or {})
    resolved: dict[str, Any] = {}
    for parameter in node.step.parameters:
        value = values[parameter.name]
        if value is None and parameter.type == "flag":
            resolved[parameter.name] = False  # an unset flag is off, as Valohai's clients send it
            continue
        if value is None:
            if not parameter.optional:
                raise NodeParameterError(
                    f"node {node.name!r}: parameter {parameter.name!r} is required but has no value; "
                    f"give one in the run conf as {node_parameter_key(node.name, parameter.name)!r}"
                )
            resolved[parameter.name] = None
            continue
        try:
            resolved[parameter.name] = coerce_parameter_value(parameter, value)
        except ValohaiAirflowError as exc:
            raise NodeParameterError(f"node {node.name!r}: {exc}") from exc
    return resolved
