"""The sidecar's triggers and pipeline settings → a DAG's schedule and arguments.

One DAG per pipeline, whatever its triggers: one enabled cron trigger is a `CronTriggerTimetable`,
several are one `MultipleCronTriggerTimetable` (all of them fire; the plan made sure they share a
time zone); data triggers (`after:`) schedule it on Assets instead, or besides (`AssetOrTimeSchedule`). Both are Airflow's own timetables, so no plugin has to be installed where the scheduler
runs, and the UI shows the crons as usual.

A trigger's `parameters` reach its runs through a `pre_execute` hook every task gets (DAG
`default_args`): in a *scheduled* run, the trigger whose cron fires at the run's logical date puts
its values into the task's `params` before the task reads them. Manual runs (the trigger form, the
REST API, `dag.test`) are untouched, and an explicit run conf still wins over a trigger's value.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, MultipleCronTriggerTimetable, Param
from airflow.sdk.definitions.param import ParamsDict

from valohai_airflow.airflow.assets import apply_event_parameters, data_schedule
from valohai_airflow.plan.model import DagKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.spec.sidecar import PipelineSettings, ProjectSettings, Trigger

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)


def dag_schedule(triggers: tuple[Trigger, ...], project_name: str) -> Any:
    """The timetable of a pipeline's enabled triggers: crons, the Assets of data triggers
    (`airflow/assets.py`), or `AssetOrTimeSchedule` for both; None (manual runs only) without any."""
    crons = list(dict.fromkeys(t.expression for t in triggers if t.cron is not None))
    assets = data_schedule(triggers, project_name)
    if not crons:
        return assets
    timezone = next(t.timezone for t in triggers if t.cron is not None)
    if len(crons) == 1:
        timetable: Any = CronTriggerTimetable(crons[0], timezone=timezone)
    else:
        timetable = MultipleCronTriggerTimetable(*crons, timezone=timezone)
    return timetable if assets is None else AssetOrTimeSchedule(timetable=timetable, assets=assets)


def dag_arguments(project: ProjectPlan, pipeline: PipelinePlan) -> dict[str, Any]:
    """schedule, catchup, start_date, tags, run limits and default_args of one pipeline's DAG."""
    settings = project.settings
    triggers = settings.triggers_for(pipeline.name, pipeline.kind)
    standalone = pipeline.kind is not DagKind.PIPELINE  # `pipelines:` settings name pipelines only
    pipeline_settings = PipelineSettings() if standalone else settings.pipeline(pipeline.name)
    kind_tag = [f"valohai-{pipeline.kind.value}"] if standalone else []
    starts = [datetime.combine(t.start_date, datetime.min.time(), UTC) for t in triggers if t.start_date]
    default_args: dict[str, Any] = {}
    if pipeline_settings.retries is not None:
        default_args["retries"] = pipeline_settings.retries
    if pipeline_settings.retry_delay_seconds is not None:
        default_args["retry_delay"] = timedelta(seconds=pipeline_settings.retry_delay_seconds)
    if triggers:
        default_args["pre_execute"] = functools.partial(
            apply_trigger_parameters, triggers=triggers, project_name=project.name
        )
    arguments: dict[str, Any] = {
        "schedule": dag_schedule(triggers, project.name),
        "catchup": any(t.catchup for t in triggers),
        "start_date": min(starts) if starts else START_DATE,
        "tags": list(dict.fromkeys(["valohai", *kind_tag, project.name, *pipeline_settings.tags])),
        "default_args": default_args,
    }
    if pipeline_settings.max_active_runs is not None:
        arguments["max_active_runs"] = pipeline_settings.max_active_runs
    if pipeline_settings.max_active_tasks is not None:
        arguments["max_active_tasks"] = pipeline_settings.max_active_tasks
    if pipeline_settings.description:
        arguments["description"] = pipeline_settings.description
    return arguments


def schedule_problem(
    pipeline: PipelinePlan, settings: ProjectSettings, params: dict[str, Param]
) -> str | None:
    """Why Airflow would refuse this scheduled DAG: a schedule makes it check every Param's default
    when it parses the file, and a scheduled run has nobody to fill in a required value."""
    triggers = settings.triggers_for(pipeline.name, pipeline.kind)
    if not triggers:
        return None
    missing = []
    for key, param in params.items():
        try:
            ParamsDict({key: param}).validate()
        except Exception:  # Airflow's ParamValidationError, whatever its exact class in this version
            missing.append(key)
    if not missing:
        return None
    titles = ", ".join(repr(t.title) for t in triggers)
    return (
        f"{pipeline.title} is scheduled by trigger(s) {titles} in {settings.source}, but "
        f"parameter(s) {', '.join(repr(k) for k in missing)} have no usable default. Airflow checks the "
        "defaults of a scheduled DAG when it parses it, and a scheduled run has nobody to fill them in: "
        "give them defaults in valohai.yaml (or mark them optional), or disable the trigger(s)."
    )


def apply_trigger_parameters(context: Any, *, triggers: tuple[Trigger, ...], project_name: str) -> None:
    """pre_execute hook: a scheduled run gets the parameters of the trigger that fired it."""
    dag_run = context.get("dag_run")
    run_type = getattr(getattr(dag_run, "run_type", None), "value", getattr(dag_run, "run_type", None))
    if run_type == "asset_triggered":
        apply_event_parameters(context, [t for t in triggers if t.after], project_name)
    if dag_run is None or run_type != "scheduled":
        return
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    fired = [t for t in triggers if when is not None and t.fires_at(when)]
    if not fired:
        log.warning("Scheduled run at %s matches none of the triggers %s", when, [t.title for t in triggers])
        return
    trigger = fired[0]
    if len(fired) > 1:
        log.warning(
            "Triggers %s all fire at %s; one run is made, with the parameters of %r (the first in the file)",
            [t.title for t in fired],
            when,
            trigger.title,
        )
    conf = getattr(dag_run, "conf", None) or {}
    params = context["params"]
    applied = {}
    for key, value in trigger.parameters.items():
        if key not in conf:
            params[key] = value
            applied[key] = value
    log.info("Scheduled by trigger %r; parameters from the trigger: %s", trigger.title, applied or "none")


def retry_arguments(settings: ProjectSettings, node: NodePlan) -> dict[str, Any]:
    """`on-error: retry`: the node retries with the sidecar's count, delay and backoff."""
    if node.on_error != "retry":
        return {}
    retry = settings.on_error_retry
    arguments: dict[str, Any] = {
        "retries": retry.retries,
        "retry_delay": timedelta(seconds=retry.delay_seconds),
        "retry_exponential_backoff": 2.0 if retry.backoff == "exponential" else 0,
    }
    if retry.max_delay_seconds is not None:
        arguments["max_retry_delay"] = timedelta(seconds=retry.max_delay_seconds)
    return arguments
