"""Checks of the sidecar (valohai-airflow.yaml) that need valohai.yaml: which pipelines and Params exist.

Errors: a trigger or a `pipelines:` entry naming a pipeline valohai.yaml lacks (also a data trigger's
`after: {pipeline: …}`, and such triggers starting each other in a circle); a trigger naming a step or
task blueprint: one valohai.yaml lacks, or one whose DAG `step_dags:` / `task_dags:` leave out); a trigger parameter
that is not a Param of the pipeline's DAG (or that an edge or a pipeline parameter fills, so the
trigger's value would never be used); a value its parameter refuses; enabled triggers of one pipeline
in different time zones (one DAG has one timetable, and Airflow's multi-cron timetable has one zone);
a `deployments:` entry naming a deployment no deployment node publishes, a `publish` endpoint that
deployment does not have, and one host port published twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from valohai_airflow.plan.conf_keys import REUSE_NODES_KEY, REUSE_RUN_KEY, REUSE_UPSTREAM_OF_KEY
from valohai_airflow.plan.model import NodeKind, PipelinePlan
from valohai_airflow.spec.data_triggers import has_placeholder
from valohai_airflow.spec.diagnostics import Diagnostics
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.parameter import Parameter, ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.sidecar import ProjectSettings, Trigger


def check_settings(
    settings: ProjectSettings,
    pipeline_names: Iterable[str],
    plans: Iterable[PipelinePlan] = (),
    *,
    steps: Iterable[str] = (),
    tasks: Iterable[str] = (),
) -> Diagnostics:
    """Every sidecar problem that needs valohai.yaml; `plans` (when it compiled: the pipelines', steps'
    and blueprints' DAG plans) adds the Param checks. `steps`, `tasks`: the names valohai.yaml has."""
    diagnostics = Diagnostics()
    names = sorted(pipeline_names)
    for name, pipeline_settings in settings.pipelines.items():
        if name not in names:
            diagnostics.error(
                f"pipeline settings {name!r}: valohai.yaml has no pipeline {name!r}",
                pipeline_settings.location,
                did_you_mean(name, names),
            )
    plans = tuple(plans)
    defined = {"pipeline": names, "step": sorted(steps), "task": sorted(tasks)}
    for trigger in settings.triggers:
        _check_target(trigger, defined, plans, diagnostics)
    _check_finished_pipelines(settings, names, diagnostics)
    if plans:  # without plans (valohai.yaml did not compile) the deployment names are unknown
        _check_deployments(settings, plans, diagnostics)
    for plan in plans:
        triggers = [t for t in settings.triggers if t.target == (plan.kind.value, plan.name)]
        _check_timezones(_named(plan), [t for t in triggers if t.enabled and t.cron], diagnostics)
        if not triggers:
            continue
        knobs = _knobs(plan)
        for trigger in triggers:
            _check_parameters(trigger, plan, knobs, diagnostics)
    return diagnostics


def _check_deployments(
    settings: ProjectSettings, plans: tuple[PipelinePlan, ...], diagnostics: Diagnostics
) -> None:
    endpoints: dict[str, set[str]] = {}  # deployment name → the endpoints its nodes publish
    for plan in plans:
        for node in plan.nodes:
            if node.kind is NodeKind.DEPLOYMENT and node.deployment is not None:
                endpoints.setdefault(node.deployment, set()).update(node.endpoints)
    names = sorted(endpoints)
    ports: dict[int, str] = {}
    for name, deployment in settings.deployments.items():
        label = f"deployment settings {name!r}"
        if name not in endpoints:
            diagnostics.error(
                f"{label}: no deployment node of valohai.yaml publishes a deployment {name!r}",
                deployment.location,
                did_you_mean(name, names),
            )
            continue
        for endpoint, port in deployment.publish.items():
            if endpoint not in endpoints[name]:
                diagnostics.error(
                    f"{label}: publish names endpoint {endpoint!r}, which deployment {name!r} does not have",
                    deployment.location,
                    did_you_mean(endpoint, sorted(endpoints[name])),
                )
            elif port in ports:
                diagnostics.error(
                    f"{label}: host port {port} of endpoint {endpoint!r} is already published for {ports[port]}; "
                    "give each endpoint its own port",
                    deployment.location,
                )
            else:
                ports[port] = f"endpoint {endpoint!r} of deployment {name!r}"


_WHAT = {"pipeline": "pipeline", "step": "step", "task": "task blueprint"}


def _named(plan: PipelinePlan) -> str:
    """`pipeline 'x'`, `step 'x'`, `task blueprint 'x'`: a DAG's plan in sidecar messages."""
    return f"{_WHAT[plan.kind.value]} {plan.name!r}"


def _check_target(
    trigger: Trigger, defined: dict[str, list[str]], plans: tuple[PipelinePlan, ...], diagnostics: Diagnostics
) -> None:
    """The pipeline, step or task blueprint a trigger runs exists (and, a step or blueprint, has its DAG)."""
    kind, name = trigger.target
    what = _WHAT[kind]
    if name not in defined[kind]:
        diagnostics.error(
            f"trigger {trigger.title!r}: valohai.yaml has no {what} {name!r}",
            trigger.location,
            did_you_mean(name, defined[kind]),
        )
    elif kind != "pipeline" and plans and not any((p.kind.value, p.name) == (kind, name) for p in plans):
        diagnostics.error(
            f"trigger {trigger.title!r}: {what} {name!r} has no DAG to run: `{kind}_dags:` of the sidecar leaves "
            "it out (or valohai-airflow lint warns why it cannot run on its own)",
            trigger.location,
            f"add {name!r} to `{kind}_dags:`",
        )


def _check_finished_pipelines(settings: ProjectSettings, names: list[str], diagnostics: Diagnostics) -> None:
    """`after: {pipeline: X}` names a pipeline of this project, and no pipeline's success starts
    itself again through such triggers (each run would start the next, for ever)."""
    starts: dict[str, set[str]] = {}  # pipeline → the pipelines its success starts
    for trigger in settings.triggers:
        for condition in trigger.after:
            if condition.pipeline is None:
                continue
            if condition.pipeline not in names:
                diagnostics.error(
                    f"trigger {trigger.title!r}: after: valohai.yaml has no pipeline {condition.pipeline!r}",
                    condition.location,
                    did_you_mean(condition.pipeline, names),
                )
            elif trigger.enabled and trigger.target[0] == "pipeline":
                target = trigger.target[1]
                if condition.pipeline in _reached(target, starts) | {target}:
                    circle = (
                        f"pipeline {target!r} would start itself"
                        if condition.pipeline == target
                        else f"pipelines {condition.pipeline!r} and {target!r} would start each other"
                    )
                    diagnostics.error(
                        f"trigger {trigger.title!r}: {circle} after each successful run, for ever",
                        condition.location,
                        "start it on a dataset or model it publishes, or on a cron",
                    )
                    continue
                starts.setdefault(condition.pipeline, set()).add(target)


def _reached(start: str, starts: dict[str, set[str]]) -> set[str]:
    """Every pipeline a success of `start` starts, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for after in starts.get(todo.pop(), ()):
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def _check_timezones(pipeline: str, triggers: list[Trigger], diagnostics: Diagnostics) -> None:
    if not triggers:
        return
    first = triggers[0]
    for trigger in triggers[1:]:
        if trigger.timezone != first.timezone:
            diagnostics.error(
                f"trigger {trigger.title!r}: time zone {trigger.timezone!r} differs from {first.timezone!r} of "
                f"trigger {first.title!r}; the triggers of {pipeline} share one Airflow timetable, "
                "so they need one time zone (write the cron in that zone)",
                trigger.location,
            )


# Param key → (the parameter whose type and bounds apply, or None for input URLs)
_Knobs = dict[str, Parameter | None]
_VARIABLE = Parameter(name="environment variable", type="string")  # `<node>.variable.<NAME>`: a string


def _knobs(plan: PipelinePlan) -> tuple[_Knobs, dict[str, str]]:
    """The Params of the pipeline's DAG and why other keys are not, from the nodes' tables (the
    trigger form reads the same ones)."""
    knobs: _Knobs = {pp.name: pp.form_parameter() for pp in plan.parameters}
    hidden: dict[str, str] = {}
    for node in plan.nodes:
        if node.kind is NodeKind.DEPLOYMENT or node.step is None:
            continue
        for parameter in node.step.parameters:
            source = node.sources.parameter(parameter.name)
            if source.pipeline_parameter is not None:
                hidden[source.conf_key] = f"pipeline parameter {source.pipeline_parameter.name!r} sets it"
            elif source.edges:
                hidden[source.conf_key] = "an edge fills it from an upstream node"
            elif source.blueprint is not None:
                hidden[source.conf_key] = f"task blueprint {source.blueprint!r} varies it"
            else:
                knobs[source.conf_key] = parameter
        for input_source in node.sources.inputs:
            knobs[input_source.conf_key] = None
        for variable in node.variables:
            if variable.offered:
                knobs[variable.conf_key(node.name)] = _VARIABLE
            elif variable.edge is None:  # its own source decides (an edge's key is the upstream's)
                why = "is secret" if variable.secret else "picks the container's network"
                hidden[variable.conf_key(node.name)] = f"environment variable {variable.name!r} {why}"
    return knobs, hidden


def _check_parameters(
    trigger: Trigger, plan: PipelinePlan, known: tuple[_Knobs, dict[str, str]], diagnostics: Diagnostics
) -> None:
    knobs, hidden = known
    for key, value in trigger.parameters.items():
        label = f"trigger {trigger.title!r}, parameter {key!r}"
        if key in hidden:
            diagnostics.error(f"{label}: cannot be set by a trigger: {hidden[key]}", trigger.location)
            continue
        if key in (REUSE_RUN_KEY, REUSE_NODES_KEY, REUSE_UPSTREAM_OF_KEY):
            reuse_problem = _reuse_problem(plan, key, value)
            if reuse_problem:
                diagnostics.error(f"{label}: {reuse_problem}", trigger.location)
            continue
        if key not in knobs:
            diagnostics.error(
                f"{label}: {_named(plan)} has no such parameter; keys are pipeline parameter names, "
                "'<node>.parameter.<name>', '<node>.input.<name>' or '<node>.variable.<NAME>'",
                trigger.location,
                did_you_mean(str(key), knobs),
            )
            continue
        if trigger.after and has_placeholder(value):  # the event's value, checked when the run starts
            continue
        problem = _value_problem(knobs[key], value)
        if problem:
            diagnostics.error(f"{label}: {problem}", trigger.location)


def _reuse_problem(plan: PipelinePlan, key: str, value: Any) -> str | None:
    """What is wrong with a trigger's `valohai.reuse.*` value: a run id string, or node names of
    the plan's execution and task nodes."""
    if key == REUSE_RUN_KEY:
        return None if isinstance(value, str) else f"expected a run id (a string), got {value!r}"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return f"expected a list of node names, got {value!r}"
    known = [n.name for n in plan.nodes if n.kind is not NodeKind.DEPLOYMENT]
    unknown = [name for name in names if name not in known]
    return f"{_named(plan)} has no execution or task node {unknown[0]!r} to reuse" if unknown else None


def _value_problem(parameter: Parameter | None, value: Any) -> str | None:
    if parameter is None:  # input URLs: one string or a list of them
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None
        return f"input URLs must be a string or a list of strings, got {value!r}"
    try:
        coerce_parameter_value(parameter, value)
    except ParameterValueError as exc:
        return "; ".join(exc.problems)
    return None
