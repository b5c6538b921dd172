"""Reusing nodes of an earlier run in Airflow: the trigger form's Params and the node tasks' check.

The logic is `runtime.reuse_nodes`; this module maps it onto Params (one enum list of the
pipeline's node names, not a Param per node: cheap at 1,000 nodes) and onto task failures
(AirflowFailException: a retry cannot fix a bad request).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.reuse_nodes import (
    NODES_KEY,
    RUN_KEY,
    UPSTREAM_OF_KEY,
    ReuseNodesError,
    requested,
    reusable_nodes,
)
from valohai_airflow.store.base import ArtifactStore


def reuse_params(pipeline: PipelinePlan) -> dict[str, Param]:
    """The form's "Reuse nodes of an earlier run" section; none for a DAG with one node."""
    names = reusable_nodes(pipeline)
    if len(names) < 2:
        return {}
    node_list: dict[str, Any] = {
        "type": "array",
        "items": {"type": "string", "enum": names},
        "examples": names,
    }
    return {
        RUN_KEY: Param(
            None,
            type=["string", "null"],
            title="Reuse nodes of run",
            description="The run id of an earlier run of this DAG whose nodes below return their results "
            "again instead of running (marked reused, linked to that run). Empty: every node runs",
            section="valohai",
        ),
        NODES_KEY: Param(
            [],
            title="Nodes to reuse",
            description="These nodes return the earlier run's results without starting a container",
            section="valohai",
            **node_list,
        ),
        UPSTREAM_OF_KEY: Param(
            [],
            title="Reuse everything upstream of",
            description="Every node these nodes depend on, directly or not, is reused; these nodes run",
            section="valohai",
            **node_list,
        ),
    }


def reused_or_checked(
    pipeline: PipelinePlan, node: NodePlan, key: ExecutionKey, context: Any, store: ArtifactStore
) -> dict[str, Any] | None:
    """A reused node's XCom value (its source's manifest); None for a node that runs, once the
    source run is known to hold every reused node (so a bad request starts no container)."""
    try:
        reuse = requested(pipeline, context["params"], run_id=key.run_id, dag_id=key.dag_id)
        if reuse is None:
            return None
        if node.name not in reuse.nodes:
            reuse.check_sources(store, pipeline)
            return None
        return reuse.reused_manifest(store, node, key)
    except ReuseNodesError as error:
        raise AirflowFailException(str(error)) from error


def reused_variants(
    pipeline: PipelinePlan, node: NodePlan, dag_id: str, context: Any, store: ArtifactStore
) -> list[dict[str, Any]] | None:
    """A reused task node's variants: the source run's, so map index i reuses its map index i."""
    try:
        reuse = requested(pipeline, context["params"], run_id=context["ti"].run_id, dag_id=dag_id)
        if reuse is None or node.name not in reuse.nodes:
            return None
        return reuse.source_variants(store, node)
    except ReuseNodesError as error:
        raise AirflowFailException(str(error)) from error
