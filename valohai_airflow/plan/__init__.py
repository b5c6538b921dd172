"""plan layer (see DESIGN.md §1): valohai.yaml model → checked, resolved pipelines, without Airflow."""

from valohai_airflow.plan.compile import compile_config
from valohai_airflow.plan.model import (
    ActionPlan,
    EdgeKind,
    EdgePlan,
    NodeKind,
    NodePlan,
    NodeSources,
    Origin,
    PipelineParameterPlan,
    PipelinePlan,
    ProjectPlan,
    ValueSource,
)
from valohai_airflow.plan.naming import dag_id_for, task_id_for

__all__ = [
    "ActionPlan",
    "EdgeKind",
    "EdgePlan",
    "NodeKind",
    "NodePlan",
    "NodeSources",
    "Origin",
    "PipelineParameterPlan",
    "PipelinePlan",
    "ProjectPlan",
    "ValueSource",
    "compile_config",
    "dag_id_for",
    "task_id_for",
]
