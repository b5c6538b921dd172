"""valohai.yaml model → checked, resolved plan.

Every semantic check of a pipeline happens here, all problems are collected (never only the first),
and each points at file:line:column, with a "did you mean" where a name is close to a known one.
What valohai-yaml's lint reports at pipeline level is reported with the same meaning; what it misses
is reported too. Errors: unknown step / task blueprint / node / endpoint; override items, edge keys,
pipeline parameter targets and action conditions naming parameters or inputs the step lacks; edge
types that are unknown or do not pair (edges.py); two edges or two pipeline parameters into one
parameter; cycles (named "a → b → a"); pipeline parameter defaults their targets refuse.
Warnings: plural socket types (read as singular), `commit:` (the dags-folder copy is used), targetless
pipeline parameters, unknown action when/then, unreadable conditions, undeclared environment variables,
an `environment` valohai-airflow.yaml does not map (machines.py).

Node overrides are merged into each node's effective step (overrides.py).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from valohai_airflow.plan.conditions import ConditionSyntaxError, parse_condition
from valohai_airflow.plan.edges import (
    ALLOWED_TARGETS,
    DEPLOYMENT_KEYS,
    SINGLE_VALUED,
    SOURCE_KINDS,
    TARGET_KINDS,
    edge_kind,
)
from valohai_airflow.plan.graph import find_cycles, topological_order
from valohai_airflow.plan.machines import resolve_machines
from valohai_airflow.plan.model import (
    ActionPlan,
    EdgeKind,
    EdgePlan,
    NodeKind,
    NodePlan,
    PipelineParameterPlan,
    PipelinePlan,
    ProjectPlan,
)
from valohai_airflow.plan.naming import task_id_for
from valohai_airflow.plan.overrides import effective_step
from valohai_airflow.plan.params import node_parameter_key
from valohai_airflow.plan.sources import pipeline_sources
from valohai_airflow.plan.variants import VariantError, expand_blueprint
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics, Location, shown
from valohai_airflow.spec.hints import did_you_mean, quoted
from valohai_airflow.spec.parameter import Parameter, ParameterValueError, coerce_parameter_value
from valohai_airflow.spec.pipeline import (
    DeploymentNode,
    Edge,
    ExecutionNode,
    Override,
    Pipeline,
    PipelineParameter,
    Socket,
    TaskNode,
)
from valohai_airflow.spec.sidecar import ProjectSettings
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task

# valohai-yaml node_action.py; `require-approval` is documented by Valohai and implemented by us.
KNOWN_WHENS = ("node-starting", "node-complete", "node-error")
KNOWN_THENS = ("noop", "stop-pipeline", "error-pipeline", "require-approval")

# Nodes of one pipeline (one DAG). A 5,000-node pipeline builds in a few seconds on 2 cores; Airflow's
# own dependency wiring grows with tasks × edges, so far larger ones would approach the DAG processor's
# import timeout and hide every project's DAGs (they all load through one file).
MAX_PIPELINE_NODES = 5000
# One project's pipelines are built in one parse of the loader file, and a project with many pipelines
# (or one pipeline copied under new names with YAML merge keys, from a short file) must not take the
# import timeout either: 10,000 nodes build and serialise in about 11 s on 2 cores. Each parameter of a
# node's step is a Param, a command token and a docs row of that node (100,000 of them: about 6 s),
# so steps and projects have parameter limits too.
MAX_PROJECT_NODES = 10_000
MAX_STEP_PARAMETERS = 20_000
MAX_PROJECT_NODE_PARAMETERS = 100_000

_SPELLED = {
    EdgeKind.OUTPUT: "an output",
    EdgeKind.INPUT: "an input",
    EdgeKind.PARAMETER: "a parameter",
    EdgeKind.METADATA: "metadata",
    EdgeKind.FILE: "a deployment file",
    EdgeKind.DEPLOYMENT: "a deployment",
    EdgeKind.ENVIRONMENT_VARIABLE: "an environment variable",
    EdgeKind.DEPENDENCY: "a dependency",
}


def compile_config(
    config: Config,
    *,
    project_name: str,
    root: str,
    content_hash: str,
    settings: ProjectSettings | None = None,
) -> ProjectPlan:
    """Check and resolve every pipeline; raise ValohaiSpecError with ALL errors, keep the warnings.

    `settings` (valohai-airflow.yaml) maps the nodes' environments to their machines (machines.py)."""
    diagnostics = Diagnostics()
    _check_size(config, diagnostics)
    diagnostics.raise_if_errors()
    compiled = [_PipelineCompiler(config, p, diagnostics).compile() for p in config.pipelines.values()]
    pipelines = resolve_machines(
        [p for p in compiled if p is not None], settings or ProjectSettings(), diagnostics
    )
    diagnostics.raise_if_errors()
    return ProjectPlan(
        name=project_name,
        root=root,
        source=config.source,
        content_hash=content_hash,
        pipelines=pipelines,
        diagnostics=tuple(diagnostics.warnings),
    )


def _check_size(config: Config, diagnostics: Diagnostics) -> None:
    """The limits on the work one project may ask of a parse (the pipelines' own: `compile`)."""
    hint = "split the project into several folders, or use task nodes to run one step many times"
    for step in config.steps.values():
        if len(step.parameters) > MAX_STEP_PARAMETERS:
            diagnostics.error(
                f"step {shown(step.name)} has {len(step.parameters):,} parameters; valohai-airflow takes at "
                f"most {MAX_STEP_PARAMETERS:,} per step (each is a Param and a command token of every node "
                "that runs the step)",
                step.location,
            )
    nodes = parameters = 0
    for pipeline in config.pipelines.values():
        if len(pipeline.nodes) > MAX_PIPELINE_NODES:
            continue  # an error of its own, and never built
        nodes += len(pipeline.nodes)
        parameters += sum(_parameter_count(config, node) for node in pipeline.nodes)
        for count, limit, what in (
            (nodes, MAX_PROJECT_NODES, "nodes"),
            (parameters, MAX_PROJECT_NODE_PARAMETERS, "node parameters (each node counts its step's)"),
        ):
            if count > limit:
                diagnostics.error(
                    f"pipeline {shown(pipeline.name)} brings the project's pipelines to {count:,} {what}; "
                    f"valohai-airflow builds at most {limit:,} per project so that the DAG processor parses the "
                    "dags folder within its timeout",
                    pipeline.location,
                    hint,
                )
                return


def _parameter_count(config: Config, node: ExecutionNode | TaskNode | DeploymentNode) -> int:
    """How many parameters the node's step has (0 for a deployment or an unknown step or task)."""
    if isinstance(node, DeploymentNode):
        return 0
    step_name = node.step
    if isinstance(node, TaskNode) and node.task is not None:
        task = config.tasks.get(node.task)
        step_name = task.step if task is not None else None
    step = config.steps.get(step_name) if step_name is not None else None
    return len(step.parameters) if step is not None else 0


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A node with what its edges and parameters are checked against."""

    kind: NodeKind
    step: Step | None  # effective step; None for deployment nodes and nodes whose step is unknown


class _PipelineCompiler:
    def __init__(self, config: Config, pipeline: Pipeline, diagnostics: Diagnostics) -> None:
        self.config = config
        self.pipeline = pipeline
        self.diagnostics = diagnostics
        self.prefix = f'pipeline "{pipeline.name}"'
        self.resolved: dict[str, _Resolved] = {}

    # -- reporting -------------------------------------------------------------------------------

    def error(self, message: str, location: Location, hint: str | None = None) -> None:
        self.diagnostics.error(f"{self.prefix}: {message}", location, hint)

    def warning(self, message: str, location: Location, hint: str | None = None) -> None:
        self.diagnostics.warning(f"{self.prefix}: {message}", location, hint)

    # -- the pipeline ----------------------------------------------------------------------------

    def compile(self) -> PipelinePlan | None:
        if len(self.pipeline.nodes) > MAX_PIPELINE_NODES:
            self.error(
                f"has {len(self.pipeline.nodes):,} nodes; one pipeline becomes one Airflow DAG, and "
                f"valohai-airflow builds at most {MAX_PIPELINE_NODES:,} nodes per pipeline so that the "
                "DAG processor parses the dags folder within its timeout",
                self.pipeline.location,
                "split it into several pipelines, or use a task node to run one step many times",
            )
            return None
        self._check_task_ids()
        node_plans = {node.name: self._compile_node(node) for node in self.pipeline.nodes}
        edges = tuple(e for e in (self._compile_edge(edge) for edge in self.pipeline.edges) if e is not None)
        self._check_single_valued_targets(edges)
        parameters = self._compile_parameters(edges)
        order = self._order(list(node_plans), edges)
        sources = pipeline_sources(node_plans.values(), edges, parameters)
        return PipelinePlan(
            name=self.pipeline.name,
            nodes=tuple(replace(node_plans[name], sources=sources[name]) for name in order),
            edges=edges,
            parameters=parameters,
            reuse_executions=self.pipeline.reuse_executions,
            location=self.pipeline.location,
        )

    def _check_task_ids(self) -> None:
        """Distinct node names could still map to one task id if a hash collided; say so instead of
        letting Airflow fail with a duplicate task. (spec already rejects duplicate and dotted names.)"""
        task_ids: dict[str, str] = {}
        for node in self.pipeline.nodes:
            task_id = task_id_for(node.name)
            if task_id in task_ids:
                self.error(
                    f'nodes "{task_ids[task_id]}" and "{node.name}" map to the same Airflow task id "{task_id}"',
                    node.location,
                    "rename one of them",
                )
            task_ids[task_id] = node.name

    # -- nodes -----------------------------------------------------------------------------------

    def _compile_node(self, node: ExecutionNode | TaskNode | DeploymentNode) -> NodePlan:
        if isinstance(node, DeploymentNode):
            self._check_endpoints(node)
            self.resolved[node.name] = _Resolved(NodeKind.DEPLOYMENT, None)
            return NodePlan(
                name=node.name,
                task_id=task_id_for(node.name),
                kind=NodeKind.DEPLOYMENT,
                step=None,
                on_error=node.on_error,
                actions=self._compile_actions(node, None),
                deployment=node.deployment,
                endpoints=tuple(node.endpoints),
                endpoint_specs=tuple(
                    self.config.endpoints[e] for e in node.endpoints if e in self.config.endpoints
                ),
                aliases=tuple(node.aliases),
                location=node.location,
            )
        kind = NodeKind.TASK if isinstance(node, TaskNode) else NodeKind.EXECUTION
        blueprint = self.config.tasks.get(node.task) if isinstance(node, TaskNode) and node.task else None
        base = self._step_of(node)
        step = None
        if base is not None:
            self._check_override(node, base, node.override)
            step = effective_step(
                base,
                node.override,
                lambda message, at: self.error(f'node "{node.name}" override: {message}', at),
            )
            if isinstance(node, TaskNode) and blueprint is not None:
                self._check_blueprint(node, blueprint, step)
        if node.commit:
            self.warning(
                f'node "{node.name}": `commit: {node.commit}` is ignored; valohai-airflow runs the step '
                "from the copy of the repository in the dags folder",
                node.location,
            )
        self.resolved[node.name] = _Resolved(kind, step)
        return NodePlan(
            name=node.name,
            task_id=task_id_for(node.name),
            kind=kind,
            step=step,
            on_error=_on_error(node, blueprint),
            edge_merge_mode=node.edge_merge_mode,
            actions=self._compile_actions(node, step),
            blueprint=blueprint,
            location=node.location,
        )

    def _step_of(self, node: ExecutionNode | TaskNode) -> Step | None:
        """The step a node runs (through its task blueprint if it has one); None after an error."""
        where = f'node "{node.name}"'
        step_name = node.step
        if isinstance(node, TaskNode) and node.task is not None:
            task = self.config.tasks.get(node.task)
            if task is None:
                self.error(
                    f'{where}: task blueprint "{node.task}" does not exist',
                    node.location,
                    did_you_mean(node.task, self.config.tasks),
                )
                return None
            step_name = task.step
            where = f'{where}, task blueprint "{task.name}"'
        assert step_name is not None, "spec gives a task node exactly one of step and task"
        step = self.config.steps.get(step_name)
        if step is None:
            elsewhere = ""
            if node.commit:
                elsewhere = (
                    f" (the node takes it from commit {node.commit!r}, but valohai-airflow runs steps from "
                    "the dags-folder copy of this repository)"
                )
            self.error(
                f'{where}: step "{step_name}" does not exist{elsewhere}',
                node.location,
                did_you_mean(step_name, self.config.steps),
            )
        return step

    def _check_override(self, node: ExecutionNode | TaskNode, step: Step, override: Override | None) -> None:
        if override is None:
            return
        where = f'node "{node.name}" override'
        for kind, items, known in (
            ("parameter", override.parameters, [p.name for p in step.parameters]),
            ("input", override.inputs, [i.name for i in step.inputs]),
        ):
            for item in items:
                if item.name not in known:
                    self.error(
                        f'{where}: {kind} "{item.name}" does not exist in step "{step.name}"',
                        item.location,
                        did_you_mean(item.name, known),
                    )
        if override.runtime_config_preset and not override.environment:
            self.error(
                f'{where}: missing "environment"; when overriding the runtime config preset, '
                "also override the environment",
                override.location,
            )

    def _check_blueprint(self, node: TaskNode, task: Task, step: Step) -> None:
        """A blueprint varies parameters by name (a name the step lacks would be silently ignored),
        gives between 1 and MAX_VARIANTS executions, and every value it gives fits its parameter."""
        known = [p.name for p in step.parameters]
        named = [(p.name, p.location) for p in task.parameters]
        named += [(name, task.location) for parameter_set in task.parameter_sets for name in parameter_set]
        unknown = False
        for name, location in named:
            if name not in known:
                unknown = True
                self.error(
                    f'node "{node.name}": task blueprint "{task.name}" sets parameter "{name}", '
                    f'which step "{step.name}" does not have',
                    location,
                    did_you_mean(name, known),
                )
        if task.parameter_sets and task.type != "manual_search":
            self.warning(
                f'node "{node.name}": task blueprint "{task.name}" is {task.type}, so its parameter-sets '
                "are not used (they are for manual_search)",
                task.location,
            )
        try:
            variants = expand_blueprint(task, seed=0)
        except VariantError as exc:
            self.error(f'node "{node.name}": {exc.message}', exc.location or task.location)
            return
        if unknown:
            return
        locations = {p.name: p.location for p in task.parameters}
        for name in dict.fromkeys(n for variant in variants for n in variant):
            target = step.parameter(name)
            assert target is not None
            for value in (variant[name] for variant in variants if name in variant):
                try:
                    coerce_parameter_value(target, value)
                except ParameterValueError as exc:
                    self.error(
                        f'node "{node.name}": task blueprint "{task.name}" gives parameter "{name}" the value '
                        f"{value!r}: {'; '.join(exc.problems)}",
                        locations.get(name, task.location),
                    )
                    break

    def _check_endpoints(self, node: DeploymentNode) -> None:
        for endpoint in node.endpoints:
            if endpoint not in self.config.endpoints:
                self.error(
                    f'deployment node "{node.name}": endpoint "{endpoint}" does not exist; '
                    "endpoints are defined by top-level `endpoint:` items",
                    node.location,
                    did_you_mean(endpoint, self.config.endpoints),
                )

    def _check_condition(
        self,
        node: ExecutionNode | TaskNode | DeploymentNode,
        step: Step | None,
        text: str,
        location: Location,
    ) -> None:
        """An unreadable condition never holds (warning, like Valohai, which does not check them); a
        condition on a parameter the step lacks is a mistake (error)."""
        try:
            condition = parse_condition(text)
        except ConditionSyntaxError as exc:
            self.warning(f'node "{node.name}": action condition: {exc}; it never holds', location)
            return
        if condition.source == "parameter" and step is not None and step.parameter(condition.key) is None:
            self.error(
                f'node "{node.name}": action condition "{text}": step "{step.name}" has no parameter "{condition.key}"',
                location,
                did_you_mean(condition.key, [p.name for p in step.parameters]),
            )

    def _compile_actions(
        self, node: ExecutionNode | TaskNode | DeploymentNode, step: Step | None
    ) -> tuple[ActionPlan, ...]:
        plans: list[ActionPlan] = []
        for action in node.actions:
            for when in action.when:
                if when not in KNOWN_WHENS:
                    self.warning(
                        f'node "{node.name}": action "when" value "{when}" is not well-known; '
                        "the action might never be triggered",
                        action.location,
                        did_you_mean(when, KNOWN_WHENS),
                    )
            for then in action.then:
                if then not in KNOWN_THENS:
                    self.warning(
                        f'node "{node.name}": action "then" value "{then}" is not well-known; '
                        "the action might do nothing",
                        action.location,
                        did_you_mean(then, KNOWN_THENS),
                    )
            for text in action.if_:
                self._check_condition(node, step, text, action.location)
            plans.append(
                ActionPlan(when=tuple(action.when), then=tuple(action.then), condition=tuple(action.if_))
            )
        return tuple(plans)

    # -- edges -----------------------------------------------------------------------------------

    def _compile_edge(self, edge: Edge) -> EdgePlan | None:
        source_kind = self._socket_kind(edge.source, edge, "source")
        target_kind = self._socket_kind(edge.target, edge, "target")
        source = self._socket_node(edge.source, "source")
        target = self._socket_node(edge.target, "target")
        if source_kind is None or target_kind is None:
            return None
        ok = True
        allowed = ALLOWED_TARGETS[source_kind]
        if target_kind not in allowed:
            goes = (
                " or ".join(_SPELLED[k] for k in allowed) if allowed else "nowhere; it is only an edge target"
            )
            self.error(
                f"edge {edge.source} → {edge.target}: "
                f"{_SPELLED[source_kind]} cannot go into {_SPELLED[target_kind]} "
                f"({_SPELLED[source_kind]} goes into {goes})",
                edge.location,
            )
            ok = False
        if source is not None:
            ok &= self._check_socket(edge.source, source_kind, source, "source")
        if target is not None:
            ok &= self._check_socket(edge.target, target_kind, target, "target")
        if not ok or source is None or target is None:
            return None
        return EdgePlan(
            source_node=edge.source.node,
            source_kind=source_kind,
            source_key=edge.source.key,
            target_node=edge.target.node,
            target_kind=target_kind,
            target_key=edge.target.key,
            location=edge.location,
        )

    def _socket_kind(self, socket: Socket, edge: Edge, side: str) -> EdgeKind | None:
        kind, plural = edge_kind(socket.type)
        if kind is None:
            self.error(
                f'edge {edge.source} → {edge.target}: "{socket.type}" is not an edge type',
                socket.location,
                did_you_mean(socket.type, [k.value for k in EdgeKind]),
            )
        elif plural:
            self.warning(
                f'edge {side} {socket}: "{socket.type}" read as "{kind.value}" '
                f'(valohai-yaml lint rejects the plural; write "{kind.value}")',
                socket.location,
            )
        return kind

    def _socket_node(self, socket: Socket, side: str) -> _Resolved | None:
        resolved = self.resolved.get(socket.node)
        if resolved is None:
            self.error(
                f'edge {side} {socket}: node "{socket.node}" does not exist',
                socket.location,
                did_you_mean(socket.node, self.resolved),
            )
        return resolved

    def _check_socket(self, socket: Socket, kind: EdgeKind, node: _Resolved, side: str) -> bool:
        """The socket's kind fits its node and its key names something the node has."""
        fitting = SOURCE_KINDS[node.kind] if side == "source" else TARGET_KINDS[node.kind]
        if kind not in fitting:
            self.error(
                f'edge {side} {socket}: a {node.kind.value} node has no "{kind.value}" {side} '
                f"(its edges can {'start from' if side == 'source' else 'go into'} {quoted(k.value for k in fitting)})",
                socket.location,
            )
            return False
        where = f"edge {side} {socket}"
        if kind is EdgeKind.PARAMETER and node.step is not None:
            known = [p.name for p in node.step.parameters]
            if socket.key not in known:
                self.error(
                    f'{where}: step "{node.step.name}" has no parameter "{socket.key}"',
                    socket.location,
                    did_you_mean(socket.key, known),
                )
                return False
        elif kind is EdgeKind.INPUT and side == "source" and node.step is not None:
            known = [i.name for i in node.step.inputs]
            if not any(fnmatch.fnmatchcase(name, socket.key) for name in known):
                self.error(
                    f'{where}: "{socket.key}" matches no input of step "{node.step.name}" '
                    "(an input edge passes on the files of the inputs whose names match)",
                    socket.location,
                    did_you_mean(socket.key, known),
                )
                return False
        elif kind is EdgeKind.INPUT and side == "target" and node.step is not None:
            known = [i.name for i in node.step.inputs]
            if socket.key not in known:
                self.error(
                    f'{where}: step "{node.step.name}" has no input "{socket.key}"',
                    socket.location,
                    did_you_mean(socket.key, known),
                )
                return False
        elif kind is EdgeKind.ENVIRONMENT_VARIABLE and node.step is not None:
            known = [v.name for v in node.step.environment_variables]
            if socket.key not in known:
                self.warning(
                    f'{where}: step "{node.step.name}" does not declare environment variable "{socket.key}"',
                    socket.location,
                    did_you_mean(socket.key, known),
                )
        elif kind is EdgeKind.DEPLOYMENT and socket.key not in DEPLOYMENT_KEYS:
            self.warning(
                f'{where}: a deployment node gives {quoted(DEPLOYMENT_KEYS)}, not "{socket.key}"',
                socket.location,
                did_you_mean(socket.key, DEPLOYMENT_KEYS),
            )
        elif kind is EdgeKind.FILE:
            return self._check_file_target(socket)
        return True

    def _check_file_target(self, socket: Socket) -> bool:
        """`<endpoint>.<file>`: an endpoint of the deployment node and, if it lists files, one of them."""
        where = f"edge target {socket}"
        endpoint_name, dot, file_name = socket.key.partition(".")
        if not dot or not endpoint_name or not file_name:
            self.error(f'{where}: a deployment file is written "<endpoint>.<file>"', socket.location)
            return False
        node = next(n for n in self.pipeline.nodes if n.name == socket.node)
        endpoints = list(node.endpoints) if isinstance(node, DeploymentNode) else []
        if endpoint_name not in endpoints:
            self.error(
                f'{where}: deployment node "{socket.node}" has no endpoint "{endpoint_name}"',
                socket.location,
                did_you_mean(endpoint_name, endpoints),
            )
            return False
        endpoint = self.config.endpoints.get(endpoint_name)
        files = [f.name for f in endpoint.files] if endpoint is not None else []
        if files and file_name not in files:
            self.error(
                f'{where}: endpoint "{endpoint_name}" has no file "{file_name}"',
                socket.location,
                did_you_mean(file_name, files),
            )
            return False
        return True

    def _check_single_valued_targets(self, edges: Sequence[EdgePlan]) -> None:
        first: dict[tuple[str, EdgeKind, str], EdgePlan] = {}
        for edge in edges:
            if edge.target_kind not in SINGLE_VALUED:
                continue
            key = (edge.target_node, edge.target_kind, edge.target_key)
            if key in first:
                what = "parameter" if edge.target_kind is EdgeKind.PARAMETER else "environment variable"
                self.error(
                    f'{what} "{edge.target_key}" of node "{edge.target_node}" is filled by two edges '
                    f"(the other at line {first[key].location.line}); only one edge may fill a {what}",
                    edge.location,
                )
            else:
                first[key] = edge

    # -- pipeline parameters ---------------------------------------------------------------------

    def _compile_parameters(self, edges: Sequence[EdgePlan]) -> tuple[PipelineParameterPlan, ...]:
        filled_by_edge = {
            (e.target_node, e.target_key): e for e in edges if e.target_kind is EdgeKind.PARAMETER
        }
        names = Counter(p.name for p in self.pipeline.parameters)
        claimed: dict[tuple[str, str], str] = {}
        plans: list[PipelineParameterPlan] = []
        for parameter in self.pipeline.parameters:
            if names[parameter.name] > 1:
                self.error(
                    f'pipeline parameter "{parameter.name}" is defined {names[parameter.name]} times',
                    parameter.location,
                )
            if not parameter.targets:
                self.warning(f'parameter "{parameter.name}": no targets.', parameter.location)
            targets = []
            for text in parameter.targets:
                target = self._parameter_target(parameter, text)
                if target is None:
                    continue
                if target in claimed and claimed[target] != parameter.name:
                    self.error(
                        f'parameter "{parameter.name}" target "{text}": pipeline parameter "{claimed[target]}" '
                        "already sets it; only one pipeline parameter may set a node parameter",
                        parameter.location,
                    )
                    continue
                claimed[target] = parameter.name
                edge = filled_by_edge.get(target)
                if edge is not None:
                    self.warning(
                        f'parameter "{parameter.name}" target "{text}": the edge at line {edge.location.line} '
                        "fills the same parameter and wins at run time",
                        parameter.location,
                    )
                targets.append(target)
            plans.append(
                PipelineParameterPlan(
                    name=parameter.name,
                    targets=tuple(targets),
                    default=_plain(parameter.default),
                    description=parameter.description,
                    location=parameter.location,
                    parameter=next(
                        (s.parameter(k) for n, k in targets if (s := self.resolved[n].step)), None
                    ),
                )
            )
        return tuple(plans)

    def _parameter_target(self, parameter: PipelineParameter, text: str) -> tuple[str, str] | None:
        where = f'parameter "{parameter.name}" target "{text}"'
        parts = text.split(".", 2)
        if len(parts) != 3:
            self.error(f'{where}: write "<node>.parameter.<name>"', parameter.location)
            return None
        node_name, socket_type, key = parts
        kind, plural = edge_kind(socket_type)
        if kind is not EdgeKind.PARAMETER:
            self.error(
                f'{where}: socket type "{socket_type}" is not supported',
                parameter.location,
                'use "parameter"',
            )
            return None
        if plural:
            self.warning(
                f'{where}: "{socket_type}" read as "parameter" (write "{node_parameter_key(node_name, key)}")',
                parameter.location,
            )
        node = self.resolved.get(node_name)
        if node is None:
            self.error(
                f'{where}: the node "{node_name}" does not exist',
                parameter.location,
                did_you_mean(node_name, self.resolved),
            )
            return None
        if node.kind is NodeKind.DEPLOYMENT:
            self.error(
                f'{where}: "{node_name}" is a deployment node, it has no parameters', parameter.location
            )
            return None
        if node.step is not None:
            target = node.step.parameter(key)
            if target is None:
                self.error(
                    f'{where}: the parameter "{key}" does not exist in step "{node.step.name}"',
                    parameter.location,
                    did_you_mean(key, [p.name for p in node.step.parameters]),
                )
                return None
            self._check_default(parameter, where, target, spread=node.kind is NodeKind.TASK)
        return node_name, key

    def _check_default(
        self, parameter: PipelineParameter, where: str, target: Parameter, *, spread: bool
    ) -> None:
        """The default must be a value the target takes, or every run that keeps it fails; a list into a
        task node is spread, one execution per item."""
        if parameter.default is None:
            return
        values = (
            list(parameter.default)
            if spread and isinstance(parameter.default, list | tuple)
            else [parameter.default]
        )
        for value in values:
            try:
                coerce_parameter_value(target, value)
            except ParameterValueError as exc:
                self.error(
                    f"{where}: default {value!r} does not fit: {'; '.join(exc.problems)}", parameter.location
                )
                return

    # -- order -----------------------------------------------------------------------------------

    def _order(self, names: list[str], edges: Sequence[EdgePlan]) -> list[str]:
        pairs = [(e.source_node, e.target_node) for e in edges]
        order = topological_order(names, pairs)
        if order is not None:
            return order
        for cycle in find_cycles(names, pairs):
            closing = next(e for e in edges if (e.source_node, e.target_node) == (cycle[-2], cycle[-1]))
            self.error(
                f"the edges form a cycle: {' → '.join(cycle)}", closing.location, "a pipeline must be acyclic"
            )
        return names


_ON_CHILD_ERROR = {
    "continue-and-complete": "continue",
    "continue-and-error": "stop-next",
    "stop-all-and-error": "stop-all",
}


def _on_error(node: ExecutionNode | TaskNode, blueprint: Task | None) -> str:
    """The node's own `on-error` when written; else its blueprint's `on-child-error` read as one."""
    if "on_error" in node.model_fields_set or blueprint is None or blueprint.on_child_error is None:
        return node.on_error
    return _ON_CHILD_ERROR[blueprint.on_child_error]


def _plain(value: Any) -> Any:
    """Lists for tuples so plan values read like the YAML (and JSON) they came from."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
