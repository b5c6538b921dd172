"""Where each value of a node comes from: the table (model.NodeSources) every consumer reads.

For every parameter, input and environment variable of a node it records what decides the value
(model.Origin), the run-conf key that sets it and whether the trigger form offers that key, with the
pipeline parameter, edges or task blueprint behind it. Built once when a pipeline compiles, in one
pass over nodes, parameters and edges, and pickled with the plan. The trigger form (Params), the
docs, the sidecar's trigger checks, a task node's variants and run-time resolution read it.

A parameter's value, lowest first: the step's default (overrides merged) ← its pipeline parameter
(the run conf's value for it, else its default) ← the node's run-conf key ← an edge or the task
blueprint's variant. So its origin is, first that applies: an edge, the blueprint, a pipeline
parameter, else the run-conf key, the only case the form offers (the others decide the value, as on
Valohai). An input takes the URLs of its run-conf key (the step's defaults in the form) and the
files its edges bring; an environment variable its step's value, or its edge's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from valohai_airflow.plan.blueprints import varied_parameters
from valohai_airflow.plan.conf_keys import node_input_key, node_parameter_key
from valohai_airflow.plan.model import (
    EdgeKind,
    EdgePlan,
    NodePlan,
    NodeSources,
    Origin,
    PipelineParameterPlan,
    ValueSource,
)


def pipeline_sources(
    nodes: Iterable[NodePlan], edges: Sequence[EdgePlan], parameters: Sequence[PipelineParameterPlan]
) -> dict[str, NodeSources]:
    """Every node's table by node name."""
    into: dict[str, list[EdgePlan]] = {}
    for edge in edges:
        into.setdefault(edge.target_node, []).append(edge)
    targeted: dict[str, dict[str, PipelineParameterPlan]] = {}
    for pp in parameters:
        for node_name, parameter_name in pp.targets:
            targeted.setdefault(node_name, {})[parameter_name] = pp
    return {
        node.name: node_sources(node, tuple(into.get(node.name, ())), targeted.get(node.name, {}))
        for node in nodes
    }


def node_sources(
    node: NodePlan, edges: tuple[EdgePlan, ...], targeted: Mapping[str, PipelineParameterPlan]
) -> NodeSources:
    """One node's table: `edges` are those into it (file order), `targeted` its parameters that
    pipeline parameters set."""
    step = node.step
    if step is None:
        return NodeSources(edges=edges)
    into: dict[tuple[EdgeKind, str], list[EdgePlan]] = {}
    for edge in edges:
        into.setdefault((edge.target_kind, edge.target_key), []).append(edge)
    varied = varied_parameters(node.blueprint)
    parameters = tuple(
        _parameter_source(
            node_parameter_key(node.name, p.name),
            p.name,
            tuple(into.get((EdgeKind.PARAMETER, p.name), ())),
            targeted.get(p.name),
            node.blueprint.name if node.blueprint is not None and p.name in varied else None,
        )
        for p in step.parameters
    )
    inputs = tuple(
        ValueSource(
            name=i.name,
            origin=Origin.EDGE if (EdgeKind.INPUT, i.name) in into else Origin.RUN_CONF,
            conf_key=node_input_key(node.name, i.name),
            offered=True,
            edges=tuple(into.get((EdgeKind.INPUT, i.name), ())),
        )
        for i in step.inputs
    )
    names = dict.fromkeys(v.name for v in step.environment_variables)
    names.update(dict.fromkeys(e.target_key for e in edges if e.target_kind is EdgeKind.ENVIRONMENT_VARIABLE))
    environment = tuple(
        ValueSource(
            name=name,
            origin=Origin.EDGE if (EdgeKind.ENVIRONMENT_VARIABLE, name) in into else Origin.DEFAULT,
            edges=tuple(into.get((EdgeKind.ENVIRONMENT_VARIABLE, name), ())),
        )
        for name in names
    )
    return NodeSources(edges=edges, parameters=parameters, inputs=inputs, environment=environment)


def _parameter_source(
    conf_key: str,
    name: str,
    edges: tuple[EdgePlan, ...],
    pipeline_parameter: PipelineParameterPlan | None,
    blueprint: str | None,
) -> ValueSource:
    if edges:
        origin = Origin.EDGE
    elif blueprint is not None:
        origin = Origin.BLUEPRINT
    elif pipeline_parameter is not None:
        origin = Origin.PIPELINE_PARAMETER
    else:
        origin = Origin.RUN_CONF
    return ValueSource(
        name=name,
        origin=origin,
        conf_key=conf_key,
        offered=origin is Origin.RUN_CONF,
        pipeline_parameter=pipeline_parameter,
        edges=edges,
        blueprint=blueprint,
    )
