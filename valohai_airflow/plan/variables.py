"""Which run-time environment variables each node gets, and from where (names and sources, never a
secret's value): the record Params, docs, reuse and run-time resolution read.

A node's variables, lowest first (a later layer replaces an earlier one's source for the same name):

1. valohai.yaml: the effective step's `environment-variables` (their `default`; one without a default
   has no source yet);
2. `variables:` of the project in valohai-airflow.yaml;
3. the `variable_groups:` the step's `environment-variable-groups` names, in the order it lists them;
4. `variables:` of the pipeline;
5. `variables:` of the step under `steps:`;
6. `variables:` of the node under `pipelines.<pipeline>.nodes:`;
7. an `environment-variable` edge into it: the upstream node's variable, from the upstream's own
   source (it is read again when this node starts: the manifest keeps names only);

and at run time, for a variable that is not secret and no edge fills, the run conf's
`<node>.variable.<NAME>` (the trigger form's field, like `vh exec run --var`); never for
`VH_DOCKER_NETWORK`, which picks the container's network. A variable valohai.yaml
declares `optional: false` that ends with no source fails its node before any container starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from valohai_airflow.plan.conf_keys import node_variable_key
from valohai_airflow.plan.machines import STEP_NETWORK_VARIABLE
from valohai_airflow.plan.model import DagKind, EdgeKind, EdgePlan, NodeKind, NodePlan, PipelinePlan
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics, Location
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.pickling import pickled_by_fields
from valohai_airflow.spec.pipeline import DeploymentNode
from valohai_airflow.spec.sidecar import SIDECAR_NAME, ProjectSettings
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.variables import VariableSpec

VALUE = "value"  # a literal (valohai.yaml's default or the sidecar's `value`)
VARIABLE = "variable"  # an Airflow Variable
CONNECTION = "connection"  # an Airflow Connection (a field, or the URI)
NONE = "none"  # declared without any source


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class VariablePlan:
    """One variable of a node: where its value comes from. Shared by every node it applies to
    (nothing in it names the node), so a project variable costs one object, not one per node."""

    name: str
    kind: str  # VALUE, VARIABLE, CONNECTION or NONE
    key: str = ""  # the Airflow Variable's key or the Connection's id
    field: str = ""  # a Connection's field; "" for the whole connection as a URI
    value: str | None = None  # a literal's value (VALUE only)
    secret: bool = False
    required: bool = False  # valohai.yaml's `optional: false`
    description: str = ""  # for the trigger form: the sidecar's, else valohai.yaml's
    declared: str = ""  # where, for messages and docs: "`variables:` of pipeline 'p' in valohai-airflow.yaml"
    location: Location = dataclasses.field(default_factory=lambda: Location(""))
    edge: EdgePlan | None = None  # an edge fills it: the source above is the upstream's
    upstream: VariablePlan | None = None  # ... and this is the upstream node's variable

    @property
    def settable(self) -> bool:
        """The run conf may set it: not secret, and not the network a step picks (who triggers a run
        does not choose the container's network); for an edge, when it may set the upstream's."""
        if self.edge is not None:
            return self.upstream is not None and self.upstream.settable
        return not self.secret and self.name != STEP_NETWORK_VARIABLE

    @property
    def offered(self) -> bool:
        """The trigger form offers `<node>.variable.<NAME>`: settable, and no edge fills it."""
        return self.settable and self.edge is None

    def conf_key(self, node: str) -> str:
        """The run-conf key that sets it on `node`: its own, or for an edge the upstream's."""
        if self.edge is None:
            return node_variable_key(node, self.name)
        assert self.upstream is not None
        return self.upstream.conf_key(self.edge.source_node)

    @property
    def source_text(self) -> str:
        """The source in words, without a value: safe for docs, logs and errors."""
        if self.kind == VARIABLE:
            text = f"Airflow Variable {self.key!r}"
        elif self.kind == CONNECTION:
            text = f"Airflow Connection {self.key!r}" + (
                f" field {self.field!r}" if self.field else " as a URI"
            )
        elif self.kind == VALUE:
            text = "a literal value"
        else:
            text = "no source"
        return text + (f", from edge {self.edge.text}" if self.edge is not None else "")


def _from_spec(name: str, spec: VariableSpec, declared: str, required: bool) -> VariablePlan:
    if spec.variable is not None:
        kind, key = VARIABLE, spec.variable
    elif spec.connection is not None:
        kind, key = CONNECTION, spec.connection
    else:
        kind, key = VALUE, ""
    return VariablePlan(
        name=name,
        kind=kind,
        key=key,
        field="" if spec.field in (None, "uri") else str(spec.field),
        value=spec.value,
        secret=spec.is_secret,
        required=required,
        description=spec.description or "",
        declared=declared,
        location=spec.location,
    )


class _Layers:
    """The sidecar's declarations as VariablePlans, built once per (level, name) and shared."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str, bool], VariablePlan] = {}

    def plans(
        self, level: str, specs: Mapping[str, VariableSpec], required: Mapping[str, bool]
    ) -> list[VariablePlan]:
        found = []
        for name, spec in specs.items():
            key = (level, name, required.get(name, False))
            if key not in self._built:
                declared = f"`variables:` of {level} in {SIDECAR_NAME}"
                if level.startswith("variable group"):
                    declared = f"{level} in {SIDECAR_NAME}"
                self._built[key] = _from_spec(name, spec, declared, key[2])
            found.append(self._built[key])
        return found


def _step_plans(step: Step) -> list[VariablePlan]:
    return [
        VariablePlan(
            name=v.name,
            kind=NONE if v.default is None else VALUE,
            value=v.default,
            required=not v.optional,
            description=v.description or "",
            declared=f"`environment-variables` of step {step.name!r} in valohai.yaml",
            location=v.location,
        )
        for v in step.environment_variables
    ]


def _node_variables(
    pipeline: str | None,
    node: NodePlan,
    settings: ProjectSettings,
    layers: _Layers,
    upstream: Mapping[str, Mapping[str, VariablePlan]],
) -> tuple[VariablePlan, ...]:
    """One node's variables in name order; `upstream`: the variables of the nodes before it."""
    step = node.step
    if step is None:
        return ()
    found: dict[str, VariablePlan] = {v.name: v for v in _step_plans(step)}
    required = {v.name: v.required for v in found.values()}
    levels: list[tuple[str, Mapping[str, VariableSpec]]] = [("the project", settings.variables)]
    levels += [
        (f"variable group {group!r}", settings.variable_groups[group])
        for group in step.environment_variable_groups
        if group in settings.variable_groups
    ]
    pipeline_settings = settings.pipelines.get(pipeline) if pipeline is not None else None
    step_settings = settings.steps.get(step.name)
    node_settings = pipeline_settings.nodes.get(node.name) if pipeline_settings else None
    if pipeline_settings:
        levels.append((f"pipeline {pipeline!r}", pipeline_settings.variables))
    if step_settings:
        levels.append((f"step {step.name!r} (under `steps:`)", step_settings.variables))
    if node_settings:
        levels.append((f"node {node.name!r} of pipeline {pipeline!r}", node_settings.variables))
    for level, specs in levels:
        for plan in layers.plans(level, specs, required):
            found[plan.name] = plan
    for source in node.sources.environment:
        for edge in source.edges:
            if edge.target_kind is not EdgeKind.ENVIRONMENT_VARIABLE:
                continue
            origin = upstream.get(edge.source_node, {}).get(edge.source_key)
            mine = found.get(source.name)
            base = origin or VariablePlan(name=edge.source_key, kind=NONE)
            found[source.name] = dataclasses.replace(
                base,
                name=source.name,
                required=mine.required if mine else False,
                declared=mine.declared if mine else f"edge {edge.text}",
                location=edge.location,
                edge=edge,
                upstream=base,
            )
    for variable in step.environment_variables:  # valohai.yaml's description where the sidecar gives none
        chosen = found[variable.name]
        if variable.description and not chosen.description:
            found[variable.name] = dataclasses.replace(chosen, description=variable.description)
    return tuple(found[name] for name in sorted(found))


def resolve_variables(
    config: Config, pipelines: Sequence[PipelinePlan], settings: ProjectSettings, diagnostics: Diagnostics
) -> tuple[PipelinePlan, ...]:
    """The pipelines with every execution and task node's variables set (nodes are in topological
    order, so an edge's upstream is done first); the sidecar's step, node and group names checked."""
    check_names(config, settings, diagnostics)
    layers = _Layers()
    resolved = []
    for pipeline in pipelines:
        done: dict[str, dict[str, VariablePlan]] = {}
        nodes = []
        for node in pipeline.nodes:
            if node.kind is NodeKind.DEPLOYMENT:
                nodes.append(node)
                continue
            named = (
                pipeline.name if pipeline.kind is DagKind.PIPELINE else None
            )  # a step's own DAG: no pipeline
            variables = _node_variables(named, node, settings, layers, done)
            done[node.name] = {v.name: v for v in variables}
            nodes.append(dataclasses.replace(node, variables=variables))
        resolved.append(dataclasses.replace(pipeline, nodes=tuple(nodes)))
    return tuple(resolved)


def check_names(config: Config, settings: ProjectSettings, diagnostics: Diagnostics) -> None:
    """Names the sidecar's variables use must exist in valohai.yaml, and the groups valohai.yaml
    names should exist in the sidecar (a warning: the step runs without them, as on Valohai without
    the organisation's group)."""
    for name, step_settings in settings.steps.items():
        if name not in config.steps:
            diagnostics.error(
                f"step settings {name!r}: valohai.yaml has no step {name!r}",
                step_settings.location,
                did_you_mean(name, config.steps),
            )
    for pipeline_name, pipeline_settings in settings.pipelines.items():
        pipeline = config.pipelines.get(pipeline_name)
        if pipeline is None:
            continue  # reported by sidecar_checks (an unknown pipeline)
        nodes = {n.name: n for n in pipeline.nodes}
        for node_name, node_settings in pipeline_settings.nodes.items():
            if node_name not in nodes:
                diagnostics.error(
                    f"node settings {node_name!r}: pipeline {pipeline_name!r} has no node {node_name!r}",
                    node_settings.location,
                    did_you_mean(node_name, nodes),
                )
            elif isinstance(nodes[node_name], DeploymentNode) and node_settings.variables:
                diagnostics.warning(
                    f"node settings {node_name!r}: a deployment node runs no step, so its `variables:` "
                    "are not used",
                    node_settings.location,
                )
    for step in config.steps.values():
        for group in step.environment_variable_groups:
            if group not in settings.variable_groups:
                hint = did_you_mean(group, settings.variable_groups)
                diagnostics.warning(
                    f"step {step.name!r}: environment-variable-group {group!r} is not defined in "
                    f"`variable_groups:` of {SIDECAR_NAME}, so its nodes run without its variables",
                    step.location,
                    hint or f"define it under `variable_groups:` in {SIDECAR_NAME}",
                )
