"""A pipeline's "finished" Asset event (`after: {pipeline: …}` triggers, Valohai's "pipeline finished"
notification): one event of `valohai://pipeline/<project>/<pipeline>` per successful run.

The DAG gets one more task, `valohai__finished`, downstream of every leaf, with the Asset as its only
outlet and the trigger rule `none_failed`: it runs when no leaf failed (skipped leaves, e.g. a task node
with no variants, are fine), and Airflow stores the outlet's event when it succeeds. Being the DAG's only
leaf, its state is the run's: a failed node fails it (`upstream_failed`), and the run emits nothing; a
stopped run (`stop-pipeline`, `stop-all`) skips it and emits nothing either. It is not an EmptyOperator:
Airflow 3.3 runs an EmptyOperator with outlets on a worker too (`TaskInstance.is_schedulable`), but
cannot put the run's details into the event's extra.

Only the pipelines a data trigger of their project names, or whose settings say `finished_event: true`,
get the task (`ProjectSettings.emits_finished`): every other pipeline's graph and run stay as in
valohai.yaml, with no extra worker slot per run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Asset, BaseOperator, TriggerRule

from valohai_airflow.asset_uris import pipeline_finished_extra, pipeline_uri
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.plan.naming import FINISHED_TASK_ID

log = logging.getLogger(__name__)


class PipelineFinishedOperator(BaseOperator):
    """The last task of a pipeline run: emits the pipeline's Asset event with the run in its extra."""

    ui_color = "#e8f5e9"

    def __init__(self, *, project_name: str, pipeline: PipelinePlan, **kwargs: Any) -> None:
        self.project_name = project_name
        self.pipeline_name = pipeline.name
        self.asset_uri = pipeline_uri(project_name, pipeline.name)
        # non-secret variables are Params too (the trigger form offers them); they stay out of the event
        self.variable_keys = frozenset(v.conf_key(n.name) for n in pipeline.nodes for v in n.variables)
        super().__init__(
            task_id=FINISHED_TASK_ID,
            task_display_name="pipeline finished",
            outlets=[Asset(self.asset_uri)],
            trigger_rule=TriggerRule.NONE_FAILED,
            doc_md=f"Emits the Asset event `{self.asset_uri}`: this run of {pipeline.name!r} succeeded.",
            **kwargs,
        )

    def execute(self, context: Any) -> None:
        dag_run = context["dag_run"]
        params = {k: v for k, v in dict(context["params"]).items() if k not in self.variable_keys}
        extra = pipeline_finished_extra(
            self.project_name, self.pipeline_name, dag_run.dag_id, dag_run.run_id, datetime.now(UTC), params
        )
        context["outlet_events"][Asset(self.asset_uri)].extra = extra
        log.info("Asset event %s: run %s of %s succeeded", self.asset_uri, dag_run.run_id, dag_run.dag_id)


def add_finished_task(dag: DAG, project_name: str, pipeline: PipelinePlan) -> PipelineFinishedOperator:
    """The finished task, downstream of every leaf of `dag` (its node tasks and control tasks)."""
    leaves = dag.leaves
    task = PipelineFinishedOperator(project_name=project_name, pipeline=pipeline, dag=dag)
    task.set_upstream(leaves)
    return task
