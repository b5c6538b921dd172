"""Steps and task blueprints run on their own: a DAG each, beside the pipelines' DAGs.

On Valohai the step is the unit of work: every step can be run as an execution (the UI's "Create
execution" form, `vh exec run STEP`, the API), and a `- task:` blueprint can be started as a Task (a
sweep) on its own; a pipeline is optional. Here each becomes a one-node pipeline, compiled by the same
code as any pipeline (compile.py): a step an execution node named after the step, a blueprint a task
node naming it. The DAG thus gets every node feature unchanged: Params, docs, links, reuse, machines.

`step_dags:` / `task_dags:` of valohai-airflow.yaml choose which (spec/dag_choice.py; default all); a name
there that valohai.yaml lacks is an error at its line, with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from valohai_airflow.plan.context import PipelineContext
from valohai_airflow.plan.model import DagKind, PipelinePlan
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.dag_choice import ChosenName, is_chosen
from valohai_airflow.spec.diagnostics import Diagnostics, Location, Severity
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.pipeline import ExecutionNode, Pipeline, TaskNode
from valohai_airflow.spec.sidecar import SIDECAR_NAME, ProjectSettings

Compiler = Callable[[PipelineContext], PipelinePlan | None]
_WHAT = {DagKind.STEP: "step", DagKind.TASK: "task blueprint"}


def compile_standalone(
    config: Config, settings: ProjectSettings, diagnostics: Diagnostics, compile_pipeline: Compiler
) -> list[PipelinePlan]:
    """The chosen steps' and blueprints' plans, in file order (steps first); `compile_pipeline` is
    compile.py's, so a one-node pipeline is checked and resolved as any pipeline is.

    A blueprint that pipeline nodes already run has its problems reported once, by those nodes (at
    the same places); one that cannot run on its own gets no DAG and warnings (_demote)."""
    _check_names(config, settings, diagnostics)
    used = {
        node.task
        for pipeline in config.pipelines.values()
        for node in pipeline.nodes
        if isinstance(node, TaskNode) and node.task
    }
    plans = []
    for kind, named, choice in (
        (DagKind.STEP, config.steps, settings.step_dags),
        (DagKind.TASK, config.tasks, settings.task_dags),
    ):
        for name, item in named.items():
            if not is_chosen(choice, name):
                continue
            found = Diagnostics()
            spec = one_node_pipeline(kind, name, item.location)
            plan = compile_pipeline(PipelineContext(config, spec, found, subject=f'{_WHAT[kind]} "{name}"'))
            reported = {d.location for d in diagnostics.items}
            if kind is DagKind.TASK and name in used and all(d.location in reported for d in found.items):
                pass  # its pipeline nodes reported the same problems
            elif found.errors:
                _demote(found, diagnostics)
                continue
            else:
                diagnostics.items.extend(found.items)
            if plan is not None and not found.errors:
                plans.append(replace(plan, kind=kind))
    return plans


def _demote(found: Diagnostics, diagnostics: Diagnostics) -> None:
    """A blueprint (or step) that cannot run on its own, though Valohai's parser lets it pass (e.g. a
    blueprint that varies nothing): it gets no DAG, and each of its problems is a warning saying so."""
    for problem in found.items:
        suffix = "; it gets no DAG of its own" if problem.severity is Severity.ERROR else ""
        diagnostics.warning(problem.message + suffix, problem.location, problem.hint)


def one_node_pipeline(kind: DagKind, name: str, location: Location) -> Pipeline:
    """The pipeline a step (one execution node) or a blueprint (one task node) runs as; the node is
    named after it. Built without validation: it is made of names valohai.yaml already checked."""
    node: ExecutionNode | TaskNode
    if kind is DagKind.STEP:
        node = ExecutionNode.model_construct(name=name, step=name, location=location)
    else:
        node = TaskNode.model_construct(name=name, task=name, location=location)
    return Pipeline.model_construct(name=name, nodes=(node,), edges=(), location=location)


def _check_names(config: Config, settings: ProjectSettings, diagnostics: Diagnostics) -> None:
    for key, named, choice in (
        ("step_dags", config.steps, settings.step_dags),
        ("task_dags", config.tasks, settings.task_dags),
    ):
        for item in _listed(choice):
            if item.name not in named:
                what = "step" if key == "step_dags" else "task blueprint"
                diagnostics.error(
                    f"`{key}:` of {SIDECAR_NAME} names {what} {item.name!r}, which valohai.yaml does not have",
                    item.location,
                    did_you_mean(item.name, named) or (None if named else f"valohai.yaml has no {what}s"),
                )


def _listed(choice: bool | tuple[ChosenName, ...]) -> tuple[ChosenName, ...]:
    return () if isinstance(choice, bool) else choice
