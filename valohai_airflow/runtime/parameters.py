"""The final value of every parameter of one node: defaults ← overrides ← pipeline parameters ← run conf ← edges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.spec.parameter import coerce_parameter_value


class NodeParameterError(ValohaiAirflowError):
    """A parameter value a node cannot run with; the message names node, parameter and value."""


def resolve_parameters(
    node: NodePlan,
    conf: Mapping[str, Any],
    edge_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Where each value comes from is the node's table (plan/sources.py); `edge_values` is what its
    edges (and a task node's variant) bring in this run."""
    if node.step is None:
        return {}
    edge_values = edge_values or {}
    resolved: dict[str, Any] = {}
    for parameter in node.step.parameters:
        source = node.sources.parameter(parameter.name)
        value = parameter.default
        if source.pipeline_parameter is not None:
            value = conf.get(source.pipeline_parameter.name, source.pipeline_parameter.default)
        if source.conf_key in conf:
            value = conf[source.conf_key]
        value = edge_values.get(parameter.name, value)
        if value is None and parameter.type == "flag":
            resolved[parameter.name] = False  # an unset flag is off, as Valohai's clients send it
            continue
        if value is None:
            if not parameter.optional:
                raise NodeParameterError(
                    f"node {node.name!r}: parameter {parameter.name!r} is required but has no value; "
                    f"give one in the run conf as {source.conf_key!r}"
                )
            resolved[parameter.name] = None
            continue
        try:
            resolved[parameter.name] = coerce_parameter_value(parameter, value)
        except ValohaiAirflowError as exc:
            raise NodeParameterError(f"node {node.name!r}: {exc}") from exc
    return resolved
