"""A task node's executions at run time: its blueprint's variants, spread over every list that
arrives for one of its parameters (a list-valued pipeline parameter from the run's values, a
list-valued metadata or parameter edge from an upstream manifest).

Valohai spreads such a list into a "multiple" variant parameter; we do the same, as a grid with the
blueprint's variants (the blueprint's first, then each spread in the order of pipeline parameters
and edges). A parameter whose own type is `multiple` takes the list whole instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from valohai_airflow.plan.blueprints import MAX_VARIANTS, Variant, VariantError, combine, expand_blueprint
from valohai_airflow.plan.model import EdgeKind, NodeKind, NodePlan, PipelinePlan


def _spread_values(
    pipeline: PipelinePlan, node: NodePlan, conf: Mapping[str, Any], edge_parameters: Mapping[str, Any]
) -> list[tuple[str, str, Any]]:
    """(parameter, where its value comes from, the value) for every single-valued parameter that a
    pipeline parameter or an edge fills (the node's table says which), pipeline parameters first,
    then edges in file order."""
    assert node.step is not None
    single = {p.name for p in node.step.parameters if p.multiple in (None, "none")}
    position = {pp.name: i for i, pp in enumerate(pipeline.parameters)}
    targeted = sorted(  # pipeline parameters in their order, each one's targets in theirs
        (position[pp.name], pp.target_texts.index(s.conf_key), s.name, pp)
        for s in node.sources.parameters
        if (pp := s.pipeline_parameter) is not None and s.name in single
    )
    found = [
        (name, f"pipeline parameter {pp.name!r}", conf.get(pp.name, pp.default)) for *_, name, pp in targeted
    ]
    found += [
        (e.target_key, f"edge {e.source_text}", edge_parameters[e.target_key])
        for e in node.sources.edges
        if e.target_kind is EdgeKind.PARAMETER and e.target_key in single and e.target_key in edge_parameters
    ]
    return found


def node_variants(
    pipeline: PipelinePlan,
    node: NodePlan,
    conf: Mapping[str, Any],
    edge_parameters: Mapping[str, Any],
) -> list[Variant]:
    """The parameter values that make each execution of `node` differ, one dict per execution.

    `conf` is the run's params, `edge_parameters` what the node's edges bring (runtime.edge_resolution).
    """
    if node.kind is not NodeKind.TASK or node.step is None:
        return [{}]
    variants: list[Variant] = expand_blueprint(node.blueprint) if node.blueprint else [{}]
    for parameter, source, value in _spread_values(pipeline, node, conf, edge_parameters):
        if isinstance(value, dict):
            raise VariantError(
                f"node {node.name!r}: {source} gives parameter {parameter!r} a mapping ({value!r}); a task node "
                "spreads a list into one execution per item, and a parameter takes a single value"
            )
        if not isinstance(value, list | tuple):
            continue
        if not value:
            raise VariantError(
                f"node {node.name!r}: {source} gives parameter {parameter!r} an empty list, so the task node "
                "would run no execution; give at least one value"
            )
        if len(variants) * len(value) > MAX_VARIANTS:
            raise VariantError(
                f"node {node.name!r}: {source} spreads {len(value):,} values of parameter {parameter!r} over "
                f"{len(variants):,} variant(s): {len(variants) * len(value):,} executions, more than the "
                f"{MAX_VARIANTS:,} a task node runs (Airflow's default [core] max_map_length)"
            )
        variants = list(combine(variants, parameter, value))
    return variants
