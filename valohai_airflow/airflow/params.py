"""Pipeline and node parameters as Airflow Params: the trigger form of a pipeline's DAG."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from valohai_airflow.airflow.reuse_form import reuse_params
from valohai_airflow.plan.model import NodeKind, PipelinePlan
from valohai_airflow.plan.variables import VariablePlan
from valohai_airflow.runtime.reuse import CONF_KEY as REUSE_KEY
from valohai_airflow.spec.parameter import Parameter

_JSON_TYPES = {"string": "string", "integer": "integer", "float": "number", "flag": "boolean"}


def _schema(parameter: Parameter) -> dict[str, Any]:
    item: dict[str, Any] = {"type": _JSON_TYPES[parameter.type]}
    if parameter.min is not None:
        item["minimum"] = parameter.min
    if parameter.max is not None:
        item["maximum"] = parameter.max
    if parameter.choices and parameter.type != "flag":
        item["enum"] = list(parameter.choices)
    if parameter.multiple not in (None, "none"):
        return {"type": "array", "items": item}
    return item


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    schema["type"] = [schema["type"], "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _as_string(value: Any) -> Any:
    """A string parameter's default written as a number (`default: 16`, untyped): Valohai passes it as
    text, so the form offers the same text; a number would fail the form's string check and every
    trigger with the defaults."""
    if isinstance(value, list):
        return [_as_string(item) for item in value]
    return value if value is None or isinstance(value, str) else str(value)


def parameter_param(parameter: Parameter, default: Any, section: str | None) -> Param:
    schema = _schema(parameter)
    if default is None and (parameter.optional or parameter.type == "flag"):
        schema = _nullable(schema)
    if parameter.multiple not in (None, "none") and default is not None and not isinstance(default, list):
        default = [default]
    if parameter.type == "string":
        default = _as_string(default)
    kwargs: dict[str, Any] = {"title": parameter.name, **schema}
    if section:
        kwargs["section"] = section
    if parameter.description:
        kwargs["description"] = parameter.description
    if default is None and "null" not in schema["type"]:
        return Param(**kwargs)  # required: the form asks for it
    return Param(default, **kwargs)


def variable_param(variable: VariablePlan, section: str) -> Param:
    """A non-secret environment variable in the trigger form (`vh exec run --var NAME=value`)."""
    return Param(
        variable.value,
        type=["string", "null"],
        title=f"{variable.name} (environment variable)",
        description=(f"{variable.description}. " if variable.description else "")
        + f"From {variable.source_text} ({variable.declared}); a value here replaces it",
        section=section,
    )


def pipeline_params(pipeline: PipelinePlan) -> dict[str, Param]:
    """Pipeline parameters first (ungrouped), then each node's own parameters, input URLs and
    non-secret environment variables by node: the keys each node's table (plan/sources.py) and
    variables (plan/variables.py) say the form offers.

    A node parameter that a pipeline parameter, an edge or a task blueprint fills is not offered
    separately: the pipeline parameter (the upstream node, the blueprint) decides its value, as on
    Valohai.
    """
    params: dict[str, Param] = {}
    for pp in pipeline.parameters:
        template = pp.form_parameter()
        if template is None:
            params[pp.name] = Param(pp.default, title=pp.name, description=pp.description)
            continue
        params[pp.name] = parameter_param(template, pp.default, section=None)
    for node in pipeline.nodes:
        if node.kind is NodeKind.DEPLOYMENT or node.step is None:
            continue
        for parameter in node.step.parameters:
            source = node.sources.parameter(parameter.name)
            if source.offered:
                params[source.conf_key] = parameter_param(parameter, parameter.default, section=node.name)
        for input_ in node.step.inputs:
            params[node.sources.input(input_.name).conf_key] = Param(
                list(input_.default),
                type="array",
                items={"type": "string"},
                title=f"{input_.name} (input URLs)",
                description=input_.description
                or "One URL or path per line: s3://, http(s):// (public hosts), or a path or file:// URL "
                "inside the project folder or a folder [valohai] input_roots allows",
                section=node.name,
            )
        for variable in node.variables:
            if variable.offered:
                params[variable.conf_key(node.name)] = variable_param(variable, node.name)
    if pipeline.reuse_executions:
        params[REUSE_KEY] = Param(
            True,
            type="boolean",
            title="Reuse unchanged executions",
            description="reuse-executions: a node whose image, command, parameters, input files, repository "
            "and step settings equal an earlier completed execution's returns that one's results instead of "
            "running. Turn off to run every node.",
            section="valohai",
        )
    params.update(reuse_params(pipeline))
    return params
