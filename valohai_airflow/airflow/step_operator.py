"""One step of a valohai.yaml as a task of a hand-written DAG, with the DAG author's parameters and
inputs: the same operator, docs and links as a generated node (it runs the step's own one-node plan,
plan/standalone.py), wired by Airflow's own means.

Parameters are Python values, checked against the step's parameter types when the DAG is parsed
(an error names step, parameter and value); inside a mapped task group a value may be the group's
mapped argument, resolved (and checked) when the task runs. An input is URLs, as the trigger form
takes them, or `outputs_of(task, glob)`: the output files of another Valohai task of this run whose
paths match the glob, found in its manifest (its XCom) through Airflow's XComArg, which inside a
mapped task group picks the same map index and outside it every one. Nothing here reaches Jinja:
the values never go through templates.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.definitions._internal.contextmanager import DagContext
from airflow.sdk.definitions._internal.mixins import ResolveMixin
from airflow.sdk.definitions.xcom_arg import XComArg

from valohai_airflow.airflow.docs import default_queue, node_doc_md
from valohai_airflow.airflow.operators import ValohaiExecutionOperator
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.airflow.variables import node_environment
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.conf_keys import node_input_key
from valohai_airflow.plan.model import DagKind, NodePlan, PipelinePlan, ProjectPlan
from valohai_airflow.runtime.execution import ExecutionRequest
from valohai_airflow.runtime.globs import compile_glob
from valohai_airflow.runtime.manifest import load_upstream
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.parameter import coerce_parameter_value

__all__ = ["OutputsOf", "ValohaiStepOperator", "outputs_of"]


class StepOperatorError(ValohaiAirflowError):
    """A step, parameter or input a `ValohaiStepOperator` cannot run with; names step and key."""


@dataclasses.dataclass(frozen=True)
class OutputsOf:
    """The output files of a Valohai task of this run whose paths (relative to its outputs dir) match
    `glob` (runtime/globs.py semantics, as an edge's `output.<glob>`)."""

    source: XComArg
    glob: str = "*"


def outputs_of(task: Any, glob: str = "*") -> OutputsOf:
    """`task`: a Valohai task (a `ValohaiStepOperator`, a node of a pipeline group) or its `.output`."""
    source = task if isinstance(task, XComArg) else XComArg(task)
    return OutputsOf(source, glob)


InputValue = str | OutputsOf | Sequence[str | OutputsOf]


class ValohaiStepOperator(ValohaiExecutionOperator):
    """Step `step` of the valohai.yaml at `project` (a path; relative ones from the working
    directory), run with `parameters` (by name; the rest keep their defaults) and `inputs` (by
    name: URLs and/or `outputs_of(...)`; the rest keep their defaults). `task_id` defaults to the
    step's own."""

    def __init__(
        self,
        *,
        project: str | os.PathLike[str],
        step: str,
        parameters: Mapping[str, Any] | None = None,
        inputs: Mapping[str, InputValue] | None = None,
        project_name: str | None = None,
        docker_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        settings = valohai_settings()
        plan = compile_project(project, project_name=project_name, cache_dir=settings.plan_cache_dir)
        pipeline = _step_plan(plan, step)
        node = pipeline.nodes[0]
        given = _checked_parameters(pipeline, dict(parameters or {}))
        step_inputs = _checked_inputs(pipeline, dict(inputs or {}))
        plain = {k: v for k, v in given.items() if not isinstance(v, ResolveMixin)}
        kwargs.setdefault("doc_md", node_doc_md(pipeline, node, _conf(node, plain, {}), default_queue()))
        super().__init__(
            project_name=plan.name,
            project_root=plan.root,
            pipeline=pipeline,
            node=node,
            dag_key=_dag_id(kwargs),
            docker_url=docker_url or settings.docker_url,
            **kwargs,
        )
        self.step_parameters = given
        self.step_inputs = step_inputs
        for value in self.step_inputs.values():
            for item in value:
                if isinstance(item, OutputsOf):
                    self.set_upstream(item.source.operator)  # type: ignore[attr-defined]

    def _request(self, context: Any) -> ExecutionRequest:
        parameters = {
            k: v.resolve(context) if isinstance(v, ResolveMixin) else v
            for k, v in self.step_parameters.items()
        }
        for name, value in parameters.items():
            _check_value(self.pipeline, name, value)
        stores = valohai_settings().stores
        inputs = {name: self._urls(name, items, context, stores) for name, items in self.step_inputs.items()}
        conf = _conf(self.node, parameters, inputs)
        request = super()._request(context)
        return dataclasses.replace(request, conf=conf, variables=node_environment(self.node, conf))

    def _urls(self, name: str, items: Sequence[str | OutputsOf], context: Any, stores: Any) -> list[str]:
        """The input's URLs: the given ones, and the stored copies of the selected upstream outputs."""
        urls: list[str] = []
        for item in items:
            if isinstance(item, str):
                urls.append(item)
                continue
            task_id = item.source.operator.task_id  # type: ignore[attr-defined]
            value = item.source.resolve(context)
            values = list(value) if isinstance(value, Sequence) and not isinstance(value, dict) else [value]
            manifests = load_upstream({task_id: values}, stores).get(task_id, [])
            if not manifests:
                raise StepOperatorError(
                    f"step {self.node.name!r}, input {name!r}: task {task_id!r} returned no manifest in this run",
                    hint="is it a Valohai task, and did it succeed?",
                )
            glob = compile_glob(item.glob)
            every, full = glob.matches_everything, glob.regex.fullmatch  # as an edge's output glob selects
            found = [f.uri for m in manifests for f in m.outputs if f.uri and (every or full(f.path))]
            self.log.info("input %r: %d file(s) of %s matching %r", name, len(found), task_id, item.glob)
            urls += found
        return urls


def _conf(node: NodePlan, parameters: Mapping[str, Any], inputs: Mapping[str, list[str]]) -> dict[str, Any]:
    """The run conf the step's node reads: only the author's values (the DAG's own Params are not
    this step's, and a pipeline group's in the same DAG may spell the same keys)."""
    conf: dict[str, Any] = {node.sources.parameter(k).conf_key: v for k, v in parameters.items()}
    conf.update({node_input_key(node.name, k): v for k, v in inputs.items()})
    return conf


def _dag_id(kwargs: Mapping[str, Any]) -> str:
    """The id of the DAG the operator is made in (its containers' `dag` label)."""
    dag = kwargs.get("dag") or DagContext.get_current()
    return str(dag.dag_id) if dag is not None else ""


def _step_plan(plan: ProjectPlan, step: str) -> PipelinePlan:
    for pipeline in plan.standalone:
        if pipeline.kind is DagKind.STEP and pipeline.name == step:
            return pipeline
    steps = [p.name for p in plan.standalone if p.kind is DagKind.STEP]
    raise StepOperatorError(
        f"{plan.source}: no step {step!r} that runs on its own",
        hint=did_you_mean(step, steps)
        or "`step_dags:` of valohai-airflow.yaml chooses which steps run on their own",
    )


def _check_value(pipeline: PipelinePlan, name: str, value: Any) -> Any:
    step = pipeline.nodes[0].step
    assert step is not None
    parameter = next(p for p in step.parameters if p.name == name)
    try:
        return coerce_parameter_value(parameter, value)
    except ValohaiAirflowError as error:
        raise StepOperatorError(f"step {step.name!r}: {error}") from error  # it names parameter and value


def _checked_parameters(pipeline: PipelinePlan, given: dict[str, Any]) -> dict[str, Any]:
    step = pipeline.nodes[0].step
    assert step is not None
    names = [p.name for p in step.parameters]
    for name, value in given.items():
        if name not in names:
            raise StepOperatorError(
                f"step {step.name!r} has no parameter {name!r}",
                hint=did_you_mean(name, names) or "it has none",
            )
        if not isinstance(value, ResolveMixin):  # a mapped argument: checked when it is known
            _check_value(pipeline, name, value)
    return given


def _checked_inputs(pipeline: PipelinePlan, given: dict[str, InputValue]) -> dict[str, list[str | OutputsOf]]:
    step = pipeline.nodes[0].step
    assert step is not None
    names = [i.name for i in step.inputs]
    checked: dict[str, list[str | OutputsOf]] = {}
    for name, value in given.items():
        if name not in names:
            raise StepOperatorError(
                f"step {step.name!r} has no input {name!r}", hint=did_you_mean(name, names) or "it has none"
            )
        items: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
        bad = next((i for i in items if not isinstance(i, str | OutputsOf)), None)
        if bad is not None:
            raise StepOperatorError(
                f"step {step.name!r}, input {name!r}: value {bad!r} is neither a URL string nor outputs_of(...)"
            )
        checked[name] = items
    return checked
