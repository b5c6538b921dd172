"""From `vh`-style command-line arguments to a DAG's run conf, checked against the compiled plan.

`valohai-airflow run` names a step, task blueprint or pipeline of a valohai.yaml and gives values as
`vh exec run` / `vh pipeline run` do (`--param name=value`, `--input name=url`, `--var NAME=value`).
Everything is checked here, before anything is triggered: an unknown DAG, parameter, input or
variable gets a did-you-mean; a value is converted to the type of its trigger-form Param and checked
by that Param (min, max, choices), so the CLI refuses what Airflow's form would refuse.

Names: in a step's or blueprint's DAG (one node) a parameter is its plain name; in a pipeline a
pipeline parameter is its name and a node's is `node.name`; the form's own keys
(`node.parameter.name`, plan/conf_keys.py) are accepted everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.dags_folder import VALOHAI_YAML
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.conf_keys import node_input_key, node_parameter_key, node_variable_key
from valohai_airflow.plan.model import DagKind, NodeKind, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for
from valohai_airflow.spec.hints import did_you_mean

_WHAT = {DagKind.PIPELINE: "pipeline", DagKind.STEP: "step", DagKind.TASK: "task blueprint"}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_EXPECTED = {"integer": "an integer", "number": "a number", "boolean": "true or false", "string": "text"}


class RunArgumentError(ValohaiAirflowError):
    """A `run` argument that names nothing or has a value of the wrong type."""


@dataclass(frozen=True)
class Target:
    """The DAG a `run` starts: which project, which plan, and its dag id."""

    project: ProjectPlan
    plan: PipelinePlan

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.project.name, self.plan.name, self.plan.kind)


def valohai_yaml_of(path: str | os.PathLike[str]) -> Path:
    """A project folder or its valohai.yaml."""
    found = Path(path)
    found = found / VALOHAI_YAML if found.is_dir() else found
    if not found.is_file():
        raise RunArgumentError(f"{found}: no such file", hint=f"give a project folder or its {VALOHAI_YAML}")
    return found


def resolve_target(
    path: str | os.PathLike[str], name: str, kind: DagKind, project_name: str | None = None
) -> Target:
    """The compiled plan of the step, blueprint or pipeline `name`; an unknown name (or one that
    valohai-airflow.yaml's `step_dags:`/`task_dags:` gives no DAG) is an error with a did-you-mean.
    `project_name`: the project's name in Airflow when the folder at `path` is named otherwise (a
    working tree run with --adhoc); by default the folder's name."""
    project = compile_project(
        valohai_yaml_of(path), project_name=project_name
    )  # ValohaiSpecError: its errors
    plans = {p.name: p for p in project.dag_plans if p.kind is kind}
    if name in plans:
        return Target(project, plans[name])
    what = _WHAT[kind]
    hint = did_you_mean(name, plans) or f"{what}s with a DAG: {', '.join(plans) or 'none'}"
    raise RunArgumentError(f"{project.name} has no {what} {name!r}", hint=hint)


def _aliases(plan: PipelinePlan, form: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """For parameters, inputs and variables: every accepted spelling -> the form's key."""
    found: dict[str, dict[str, str]] = {"parameter": {}, "input": {}, "variable": {}}
    single = plan.kind is not DagKind.PIPELINE
    for pp in plan.parameters:
        found["parameter"][pp.name] = pp.name
    for node in plan.nodes:
        if node.kind is NodeKind.DEPLOYMENT or node.step is None:
            continue
        keys = {
            "parameter": [(p.name, node_parameter_key(node.name, p.name)) for p in node.step.parameters],
            "input": [(i.name, node_input_key(node.name, i.name)) for i in node.step.inputs],
            "variable": [(v.name, node_variable_key(node.name, v.name)) for v in node.variables],
        }
        for kind, pairs in keys.items():
            for short, key in pairs:
                if key not in form:
                    continue  # filled by an edge, a pipeline parameter or a blueprint: not offered
                found[kind][key] = key
                found[kind][short if single else f"{node.name}.{short}"] = key
    return found


def _split(kind: str, item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise RunArgumentError(f"--{kind} {item!r}: expected NAME=VALUE")
    return name.strip(), value


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type", "string")
    return [kind] if isinstance(kind, str) else list(kind)


def convert(key: str, raw: str, schema: Mapping[str, Any]) -> Any:
    """`raw` as the JSON type the Param's schema asks for; a mismatch names the key and the type."""
    types = [t for t in _types(schema) if t != "null"]
    kind = types[0] if types else "string"
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "boolean":
            if raw.lower() in _TRUE | _FALSE:
                return raw.lower() in _TRUE
            raise ValueError(raw)
    except ValueError:
        raise RunArgumentError(
            f"parameter {key!r}: {raw!r} is not {_EXPECTED[kind]}", hint=f"{key} takes type {kind}"
        ) from None
    return raw


def build_conf(
    plan: PipelinePlan,
    *,
    parameters: Sequence[str] = (),
    inputs: Sequence[str] = (),
    variables: Sequence[str] = (),
) -> dict[str, Any]:
    """The run conf for `--param`, `--input` and `--var` items, each checked by its form Param."""
    from airflow.sdk.exceptions import ParamValidationError

    from valohai_airflow.airflow.params import pipeline_params  # imports Airflow: lazily

    form = pipeline_params(plan)
    aliases = _aliases(plan, form)
    conf: dict[str, Any] = {}
    for kind, items in (("parameter", parameters), ("input", inputs), ("variable", variables)):
        flag = {"parameter": "param", "input": "input", "variable": "var"}[kind]
        for item in items:
            name, raw = _split(flag, item)
            key = aliases[kind].get(name)
            if key is None:
                hint = did_you_mean(name, [a for a in aliases[kind] if a.count(".") < 2])
                raise RunArgumentError(f"{plan.title} has no {kind} {name!r}", hint=hint)
            schema = form[key].schema
            if "array" in _types(schema):
                conf.setdefault(key, []).append(convert(key, raw, schema.get("items", {})))
            elif key in conf:
                raise RunArgumentError(f"{kind} {name!r} given twice", hint="it takes one value")
            else:
                conf[key] = convert(key, raw, schema)
    for key, value in conf.items():
        try:
            form[key].resolve(value)
        except ParamValidationError as error:
            first = str(error).splitlines()[0]
            raise RunArgumentError(f"parameter {key!r}: {first}") from None
    return conf
