"""A task node → Airflow's dynamic task mapping.

`<node>__variants` works out, at run time, the parameter values of each of the node's executions
(`runtime.fan_out`: the blueprint's variants spread over list-valued pipeline parameters and
edges) and returns them as a list; the node itself is `ValohaiExecutionOperator.partial(...)
.expand(variant=<that list>)`, one map index per execution, each labelled with its values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from valohai_airflow.airflow import control_tasks
from valohai_airflow.airflow.operators import upstream_values
from valohai_airflow.airflow.reuse_form import reused_variants
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.blueprints import label
from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.plan.naming import VARIANTS_SUFFIX
from valohai_airflow.runtime.edge_resolution import resolve_edges
from valohai_airflow.runtime.fan_out import node_variants
from valohai_airflow.runtime.manifest import load_upstream

MAP_INDEX_TEMPLATE = "{{ task.variant_label }}"  # a property of ours; user values are data, not templates


class ValohaiVariantsOperator(BaseOperator):
    """Returns the list of parameter sets a task node runs, one per execution."""

    template_fields: Sequence[str] = ()
    ui_color = "#c3e6cb"

    def __init__(self, *, pipeline: PipelinePlan, node: NodePlan, **kwargs: Any) -> None:
        super().__init__(
            task_id=f"{node.task_id}{VARIANTS_SUFFIX}", task_display_name=f"variants of {node.name}", **kwargs
        )
        self.pipeline = pipeline
        self.node = node

    def execute(self, context: Any) -> list[dict[str, Any]]:
        control_tasks.check_upstreams(self, context, self.pipeline, self.node)
        reused = reused_variants(
            self.pipeline, self.node, self.dag_id, context, valohai_settings().stores.store
        )
        if reused is not None:
            self.log.info(
                "node %r is reused: its %d execution(s) are the source run's", self.node.name, len(reused)
            )
            return reused
        try:
            upstream = load_upstream(
                upstream_values(context, self, self.pipeline, self.node), valohai_settings().stores
            )
            edges = resolve_edges(self.pipeline, self.node, upstream)
            variants = node_variants(self.pipeline, self.node, dict(context["params"]), edges.parameters)
        except ValohaiAirflowError as error:
            raise AirflowFailException(str(error)) from error
        self.log.info("node %r runs %d execution(s):", self.node.name, len(variants))
        for index, variant in enumerate(variants):
            self.log.info("  [%d] %s", index, label(variant))
        return variants
