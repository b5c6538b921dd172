"""The docs the web UI shows: the DAG's doc_md (the pipeline as the user wrote it, so the UI explains
the graph) and each node task's doc_md (step, image, the exact command, where values come from)."""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from valohai_airflow.plan.blueprints import expand_blueprint, label
from valohai_airflow.plan.model import (
    DagKind,
    EdgeKind,
    MachinePlan,
    NodeKind,
    NodePlan,
    PipelinePlan,
    ProjectPlan,
    ValueSource,
)
from valohai_airflow.runtime.config_files import CONTAINER_ROOT
from valohai_airflow.runtime.execution import script_command
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.parameters import NodeParameterError, resolve_parameters
from valohai_airflow.runtime.workdir import valohai_environment
from valohai_airflow.sizes import size_text
from valohai_airflow.spec.commands import build_script, join_command


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_ABOUT = {
    DagKind.PIPELINE: "Valohai pipeline",
    DagKind.STEP: "A Valohai step run on its own (Valohai's Create execution)",
    DagKind.TASK: "A Valohai task blueprint run on its own (a Task: one execution per variant)",
}


def pipeline_doc_md(project: ProjectPlan, pipeline: PipelinePlan) -> str:
    lines = [
        f"# {_cell(pipeline.name)}",
        "",
        f"{_ABOUT[pipeline.kind]} from `{project.source}` (project `{project.name}`).",
        "",
        "| node | kind | step | image |",
        "| --- | --- | --- | --- |",
    ]
    for node in pipeline.nodes:
        step = node.step
        lines.append(
            f"| {_cell(node.name)} | {node.kind.value} | {_cell(step.name if step else node.deployment or '')} "
            f"| {_cell(step.image if step else '')} |"
        )
    lines += ["", "| edge from | to |", "| --- | --- |"]
    for edge in pipeline.edges:
        lines.append(f"| `{_cell(edge.source_text)}` | `{_cell(edge.target_text)}` |")
    if pipeline.parameters:
        lines += ["", "| pipeline parameter | default | targets |", "| --- | --- | --- |"]
        for pp in pipeline.parameters:
            targets = ", ".join(pp.target_texts)
            lines.append(f"| {_cell(pp.name)} | `{_cell(pp.default)}` | {_cell(targets)} |")
    return "\n".join(lines) + "\n"


# --- a node task's doc_md --------------------------------------------------------------------------


def _fence(text: str) -> str:
    """A fenced code block that no backtick run inside `text` can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def param_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """The run conf a trigger with every default gives: the DAG Params that have a value."""
    return {key: param.value for key, param in params.items() if getattr(param, "has_value", True)}


def _doc_command(
    node: NodePlan, conf: Mapping[str, Any], variant: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, str, str | None]:
    """(parameter values, the script, a note) as the node would run with `conf`: the runtime's own
    parameter resolution and the spec's command building; a parameter an edge fills shows as
    `<source>`, because its value exists only at run time."""
    step = node.step
    assert step is not None
    from_edges = {s.name: f"<{s.edges[0].source_text}>" for s in node.sources.parameters if s.edges}
    relaxed = node
    if from_edges:
        parameters = tuple(
            p.model_copy(update={"optional": True}) if p.name in from_edges else p for p in step.parameters
        )
        relaxed = replace(node, step=step.model_copy(update={"parameters": parameters}))
    try:
        values = resolve_parameters(relaxed, conf, variant)
    except NodeParameterError as error:
        script = join_command([line.strip() for line in _listify(step.command)])
        return (
            None,
            script,
            f"The command as written: with the trigger form's defaults it cannot run ({error}).",
        )
    for name, placeholder in from_edges.items():
        parameter = step.parameter(name)
        if parameter is not None and parameter.type != "flag":
            values[name] = placeholder
    return values, build_script(step, values), None


def _listify(command: str | Sequence[str]) -> list[str]:
    return [command] if isinstance(command, str) else list(command)


def _variables_text(node: NodePlan) -> list[str]:
    """The node's environment variables by name and source, never a value (plan/variables.py); then
    the `VH_*` names every node gets."""
    lines = []
    if node.variables:
        lines += ["", "| environment variable | from | secret | declared in |", "| --- | --- | --- | --- |"]
        for variable in node.variables:
            source = variable.source_text
            if variable.offered:
                source += f"; trigger form `{_cell(variable.conf_key(node.name))}`"
            required = " (required)" if variable.required else ""
            lines.append(
                f"| `{_cell(variable.name)}`{required} | {_cell(source)} | {'yes' if variable.secret else 'no'} "
                f"| {_cell(variable.declared)} |"
            )
    system = ", ".join(f"`{_cell(n)}`" for n in sorted(_system_names()))
    return [*lines, "", f"Valohai's system variables: {system}."]


@functools.cache
def _system_names() -> frozenset[str]:
    """The `VH_*` names every node gets (the same for all: only their values differ)."""
    key = ExecutionKey("dag", "run", "node")
    return frozenset(valohai_environment(key, project_id="p", pipeline_id="r", pipeline_node_id="n"))


def node_doc_md(
    pipeline: PipelinePlan,
    node: NodePlan,
    conf: Mapping[str, Any],
    default: str,
) -> str:
    """A node task's doc_md: step, image, the exact command with `conf` (the DAG's defaults), its
    parameters and inputs with where their values come from (the node's table), and the names of its
    environment. `default`: Airflow's default queue."""
    if node.step is None:
        return _deployment_doc_md(pipeline, node, default)
    step = node.step
    variants = expand_blueprint(node.blueprint, seed=0) if node.blueprint else [{}]
    values, script, note = _doc_command(node, conf, variants[0])
    *interpreter, body = script_command(script)
    from_edges = values is not None and any(s.edges for s in node.sources.parameters)
    kind = f"{node.kind.value} node"
    lines = [
        f"# {_cell(node.name)}",
        "",
        f"Valohai {kind} of pipeline `{_cell(pipeline.name)}`: step `{_cell(step.name)}` in image "
        f"`{_cell(step.image)}`, on error `{node.on_error}`.",
        "",
    ]
    if step.description:
        lines += [step.description, ""]
    lines += [machine_text(node, default), ""]
    for line in _step_keys_text(node):
        lines += [line, ""]
    if node.kind is NodeKind.TASK:
        lines += [_task_text(node, variants), ""]
    lines += [
        f"The command, with the trigger form's default values, run as `{shlex.join(interpreter)} <script>` "
        f"in `{CONTAINER_ROOT}/repository`"
        + (" (a `<node.kind.key>` value is filled by that edge at run time)" if from_edges else "")
        + ":",
        "",
        _fence(body),
    ]
    if note:
        lines += ["", note]
    if step.parameters:
        lines += ["", "| parameter | type | value | from |", "| --- | --- | --- | --- |"]
        for parameter in step.parameters:
            source = node.sources.parameter(parameter.name)
            value = values.get(parameter.name) if values is not None else parameter.default
            shown = "at run time" if source.edges else f"`{_cell(json.dumps(value, default=str))}`"
            lines.append(f"| {_cell(parameter.name)} | {parameter.type} | {shown} | {_origin_text(source)} |")
    if step.inputs:
        lines += ["", "| input | default URLs | edges |", "| --- | --- | --- |"]
        for input_ in step.inputs:
            source = node.sources.input(input_.name)
            urls = conf.get(source.conf_key, list(input_.default))
            urls = [urls] if isinstance(urls, str) else list(urls or [])
            into = [f"`{_cell(e.source_text)}`" for e in source.edges]
            merge = f" ({node.edge_merge_mode})" if into and urls else ""
            lines.append(
                f"| {_cell(input_.name)}{' (optional)' if input_.optional else ''} "
                f"| {', '.join(f'`{_cell(u)}`' for u in urls)} | {', '.join(into)}{merge} |"
            )
    lines += _variables_text(node)
    return "\n".join(lines) + "\n"


def _step_keys_text(node: NodePlan) -> list[str]:
    """What the step's `stop-condition` and allowed `mounts` do, when it has them."""
    assert node.step is not None
    lines = []
    if node.step.stop_condition:
        lines.append(
            f"Stops when `{_cell(node.step.stop_condition)}` holds over its metadata (stop-condition); "
            "the task then succeeds with the outputs written so far."
        )
    lines += [
        f"Mounts host folder `{_cell(m.source)}` at `{_cell(m.destination)}`{' read-only' if m.readonly else ''}."
        for m in node.machine.mounts
    ]
    return lines


def _origin_text(source: ValueSource) -> str:
    """The docs' "from" cell of a parameter: what its table entry says decides its value."""
    if source.edges:
        return f"edge `{_cell(source.edges[0].source_text)}`"
    if source.blueprint is not None:
        return f"task blueprint `{_cell(source.blueprint)}`"
    if source.pipeline_parameter is not None:
        return f"pipeline parameter `{_cell(source.pipeline_parameter.name)}`"
    return f"trigger form `{_cell(source.conf_key)}`"


def _task_text(node: NodePlan, variants: Sequence[Mapping[str, Any]]) -> str:
    """How many executions a task node runs and which one the command below shows."""
    blueprint = node.blueprint
    source = (
        f"{len(variants)} execution(s) from task blueprint `{_cell(blueprint.name)}` ({blueprint.type})"
        if blueprint
        else "one execution"
    )
    return (
        f"A task node: {source}, times each list a pipeline parameter or an edge brings into one of its "
        "parameters; each execution is a mapped task instance named by its values. Shown below: the first"
        + (f", `{_cell(label(variants[0]))}`." if variants[0] else ".")
    )


def _deployment_doc_md(pipeline: PipelinePlan, node: NodePlan, default: str) -> str:
    files = [
        f"`{_cell(e.source_text)}` → `{_cell(e.target_key)}`"
        for e in node.sources.edges
        if e.target_kind is EdgeKind.FILE
    ]
    lines = [
        f"# {_cell(node.name)}",
        "",
        f"Valohai deployment node of pipeline `{_cell(pipeline.name)}`: publishes a new version of "
        f"deployment `{_cell(node.deployment or '')}` to the store; it runs no container.",
        "",
        "Endpoints: " + (", ".join(f"`{_cell(e)}`" for e in node.endpoints) or "none") + ".",
    ]
    if files:
        lines += ["", "Files: " + "; ".join(files) + "."]
    lines += [
        "",
        f"Runs on Airflow's default queue `{_cell(default)}`: valohai.yaml gives a deployment no "
        "`environment`, so `environments:` of valohai-airflow.yaml does not apply, and the containers that "
        "serve its endpoints (`serve: true`) start on the worker that runs this task, without CPU, memory "
        "or GPU limits. Their network: the project's `network` in valohai-airflow.yaml, else the Docker "
        "engine's default; an endpoint with a `publish`ed port gets `bridge`.",
    ]
    return "\n".join(lines) + "\n"


def default_queue() -> str:
    """Airflow's `[operators] default_queue`: where a task without its own queue goes."""
    from airflow.configuration import conf

    return str(conf.get("operators", "default_queue", fallback="default"))


def machine_text(node: NodePlan, default: str) -> str:
    """Where the node's task waits (queue, pool) and what its container may use, from its environment;
    `default`: Airflow's default queue."""
    machine = node.machine
    environment = f"`{_cell(machine.environment)}`" if machine.environment else ""
    if machine.environment is None:
        where = f"Runs on Airflow's default queue `{_cell(default)}`: its step names no `environment`."
    elif not machine.mapped:
        where = (
            f"Environment {environment} has no mapping in `environments:` of valohai-airflow.yaml (a warning "
            f"when the DAG is built), so it runs on Airflow's default queue `{_cell(default)}`."
        )
    else:
        queue = _cell(machine.queue or default)
        where = (
            f"Environment {environment} (`environments:` of valohai-airflow.yaml): the task waits in queue "
            f"`{queue}` until a worker that serves it takes it (`airflow celery worker --queues {queue}`; "
            "a LocalExecutor runs every queue)"
        )
        if machine.pool is not None:
            slots = machine.pool_slots or 1
            where += (
                f" and for {slots} free slot{'s' if slots != 1 else ''} of pool `{_cell(machine.pool)}` "
                f"(create it first: `airflow pools set {_cell(machine.pool)} <slots> <description>`)"
            )
        elif machine.pool_slots is not None:
            where += f", taking {machine.pool_slots} slots of Airflow's `default_pool`"
        where += "."
    limits = []
    if machine.cpus is not None:
        limits.append(f"{machine.cpus:g} CPUs ({machine.cpus_from})")
    if machine.memory is not None:
        limits.append(f"{size_text(machine.memory)} memory ({machine.memory_from})")
    if machine.shm_size is not None:
        limits.append(f"{size_text(machine.shm_size)} `/dev/shm`")
    if machine.gpus is not None:
        count = (
            "all GPUs" if machine.gpus == "all" else f"{machine.gpus} GPU{'s' if machine.gpus != 1 else ''}"
        )
        limits.append(f"{count} (an NVIDIA device request; the worker needs the NVIDIA Container Toolkit)")
    shown = "; ".join(_cell(limit) for limit in limits) if limits else "none (the host's CPUs and memory)"
    return f"{where} Container limits: {shown}. {network_text(machine)}"


def network_text(machine: MachinePlan) -> str:
    """Which Docker network the node's container gets, and whether its step may pick another."""
    if machine.network is None:
        network = "the Docker engine's default (`bridge` on a usual engine: online)"
    else:
        network = f"`{_cell(machine.network)}` ({_cell(machine.network_from)})"
    step = (
        "a `VH_DOCKER_NETWORK` variable of the step picks another"
        if machine.step_network
        else "valohai-airflow.yaml forbids `VH_DOCKER_NETWORK` to pick another"
    )
    return f"Network: {network}; {step}."


#: (the pipeline's doc_md, each node's doc_md by node name)
PipelineDocs = tuple[str, dict[str, str]]


def pipeline_docs(
    project: ProjectPlan, pipeline: PipelinePlan, conf: Mapping[str, Any], default: str
) -> PipelineDocs:
    """The pipeline's docs with `conf` (the DAG's defaults) and Airflow's default queue `default`."""
    return (
        pipeline_doc_md(project, pipeline),
        {n.name: node_doc_md(pipeline, n, conf, default) for n in pipeline.nodes},
    )
