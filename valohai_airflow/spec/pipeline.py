"""Pipelines: nodes, edges (shorthand and long form), node actions, overrides and pipeline parameters."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from valohai_airflow.spec._base import (
    Bool,
    PlainAny,
    PlainDict,
    SpecModel,
    Str,
    StrList,
    StrOrStrList,
    spec_error,
    to_plain,
)
from valohai_airflow.spec.diagnostics import Location, Severity
from valohai_airflow.spec.input import Input
from valohai_airflow.spec.parameter import Parameter
from valohai_airflow.spec.step import EnvironmentVariable, Mounts
from valohai_airflow.spec.yaml_loader import YamlList, YamlMap

ErrorAction = Literal["stop-all", "stop-next", "continue", "retry"]
DeploymentErrorAction = Literal["stop-all", "stop-next", "continue"]
EdgeMergeMode = Literal["replace", "append"]
NODE_TYPES = ("execution", "task", "deployment")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def socket_text(node: str, socket_type: str, key: str) -> str:
    """One end of an edge as valohai.yaml writes it (`train.output.model.pb`); the plan's edges, the
    run-conf keys of node parameters and inputs, and every message naming an edge use it."""
    return f"{node}.{socket_type}.{key}"


class Socket(SpecModel):
    """One end of an edge: ``node.type.key`` split on the first two dots (the key may contain dots)."""

    kind: ClassVar[str] = "edge socket"

    node: Str
    type: Str
    key: Str

    def __str__(self) -> str:
        return socket_text(self.node, self.type, self.key)


def _socket(what: str, value: Any, location: Location | None) -> Any:
    if not isinstance(value, str):
        raise spec_error(
            "socket",
            "{what} must be a string like 'node.output.file', got {value!r}",
            {"what": what, "value": to_plain(value)},
        )
    parts = value.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise spec_error(
            "socket",
            "{what} specifier {value!r} must have 3 parts like 'node.type.key' (it has {count})",
            {"what": what, "value": value, "count": len(parts)},
        )
    node, type_, key = parts
    socket: dict[str, Any] = {"node": node, "type": type_, "key": key}
    if location is not None:
        socket["location"] = location
    return socket


class Edge(SpecModel):
    """``[source, target]`` or ``{source, target, configuration}``; both become the same Edge."""

    kind: ClassVar[str] = "edge"

    source: Socket
    target: Socket
    configuration: PlainDict = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _shorthand(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, list | tuple):
            if len(data) != 2:
                raise spec_error(
                    "edge_shorthand",
                    "malformed edge shorthand {value!r}: it needs exactly two items, [source, target]",
                    {"value": to_plain(data)},
                )
            location = data.location if isinstance(data, YamlList) else None
            locations = data.item_locations if isinstance(data, YamlList) else [None, None]
            mapping: dict[str, Any] = {
                "source": _socket("source", data[0], locations[0]),
                "target": _socket("target", data[1], locations[1]),
            }
            if location is not None:
                mapping["location"] = location
            return handler(mapping)
        if isinstance(data, dict):
            data = _with_sockets(data)
        return handler(data)


def _with_sockets(data: dict[Any, Any]) -> dict[Any, Any]:
    """Long form: split source/target strings, keeping a located mapping located for key checks."""
    if isinstance(data, YamlMap):
        out: dict[Any, Any] = YamlMap(data.location)
        out.key_locations = data.key_locations  # type: ignore[attr-defined]
        out.value_locations = data.value_locations  # type: ignore[attr-defined]
        locations = data.value_locations
    else:
        out, locations = {}, {}
    for key, value in data.items():
        if key in ("source", "target") and not isinstance(value, dict | Socket):
            out[key] = _socket(key, value, locations.get(key))
        else:
            out[key] = value
    return out


class NodeAction(SpecModel):
    """``when``/``if``/``then`` of a node; each may be a string or a list in YAML, always a tuple here."""

    kind: ClassVar[str] = "action"

    when: StrOrStrList
    if_: StrOrStrList = Field(default=(), alias="if")
    then: StrOrStrList

    @field_validator("when", mode="after")
    @classmethod
    def _lower_when(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(w.lower() for w in value)


class Override(SpecModel):
    """Step fields a node overrides; items merge into the step's by name (done by the plan layer)."""

    kind: ClassVar[str] = "override"
    unknown_key_severity: ClassVar[Severity] = Severity.WARNING
    unknown_key_hint: ClassVar[str | None] = "should it be nested under `parameters` or `inputs`?"
    value_locations: ClassVar[dict[str, str]] = {"environment": "environment_location"}

    image: Str | None = None
    command: StrOrStrList | None = None
    parameters: tuple[Parameter, ...] = ()
    inputs: tuple[Input, ...] = ()
    environment_variables: tuple[EnvironmentVariable, ...] = Field(default=(), alias="environment-variables")
    mounts: Mounts = ()
    environment: Str | None = None
    environment_location: Location | None = Field(default=None, exclude=True, repr=False)
    runtime_config_preset: Str | None = Field(default=None, alias="runtime-config-preset")
    autorestart: Bool | None = None


OnError = Annotated[ErrorAction, BeforeValidator(lambda v: "stop-all" if v is None else _lower(v))]
MergeMode = Annotated[EdgeMergeMode, BeforeValidator(lambda v: "replace" if v is None else _lower(v))]


class _NodeBase(SpecModel):
    name: Str
    actions: tuple[NodeAction, ...] = ()

    @field_validator("name", mode="after")
    @classmethod
    def _no_dots(cls, value: str) -> str:
        if "." in value:
            raise spec_error(
                "node_name",
                "node name {value!r} must not contain '.' (edges use node.type.key)",
                {"value": value},
            )
        return value


class ExecutionNode(_NodeBase):
    """A node that runs one execution of a step."""

    kind: ClassVar[str] = "node"

    type: Literal["execution"] = "execution"
    step: Str
    commit: Str | None = None
    on_error: OnError = Field(default="stop-all", alias="on-error")
    edge_merge_mode: MergeMode = Field(default="replace", alias="edge-merge-mode")
    override: Override | None = None


class TaskNode(_NodeBase):
    """A node that runs many executions of one step (a task), from a step or a task blueprint."""

    kind: ClassVar[str] = "node"

    type: Literal["task"] = "task"
    step: Str | None = None
    task: Str | None = None
    commit: Str | None = None
    on_error: OnError = Field(default="stop-all", alias="on-error")
    edge_merge_mode: MergeMode = Field(default="replace", alias="edge-merge-mode")
    override: Override | None = None

    @model_validator(mode="after")
    def _step_or_task(self) -> TaskNode:
        if (self.step is None) == (self.task is None):
            raise spec_error(
                "task_node", "task node {name!r} needs exactly one of 'step' or 'task'", {"name": self.name}
            )
        return self


class DeploymentNode(_NodeBase):
    """A node that creates a deployment version; has no step, override, commit or edge-merge-mode."""

    kind: ClassVar[str] = "node"
    yaml_excluded: ClassVar[frozenset[str]] = frozenset({"override", "commit", "edge-merge-mode"})

    type: Literal["deployment"] = "deployment"
    deployment: Str
    endpoints: StrList = ()
    aliases: StrList = ()
    on_error: Annotated[
        DeploymentErrorAction, BeforeValidator(lambda v: "stop-all" if v is None else _lower(v))
    ] = Field(default="stop-all", alias="on-error")
    edge_merge_mode: EdgeMergeMode = Field(default="replace", alias="edge-merge-mode")
    override: Override | None = None
    commit: Str | None = None


def _node_type(value: Any) -> str | None:
    node_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return node_type if node_type in NODE_TYPES else None


Node = Annotated[
    Annotated[ExecutionNode, Tag("execution")]
    | Annotated[TaskNode, Tag("task")]
    | Annotated[DeploymentNode, Tag("deployment")],
    Discriminator(
        _node_type,
        custom_error_type="node_type",
        custom_error_message="node needs 'type: execution', 'type: task' or 'type: deployment'",
    ),
]


class PipelineParameter(SpecModel):
    """A pipeline-level parameter that sets node parameters (``targets``, or the singular ``target``)."""

    kind: ClassVar[str] = "pipeline parameter"

    name: Str
    targets: StrOrStrList = ()
    target: Str | None = Field(default=None, exclude=True)
    default: PlainAny = None
    description: Str | None = None
    category: Str | None = None

    @model_validator(mode="before")
    @classmethod
    def _singular_target(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" in data and "targets" in data:
            raise spec_error("targets", "use either 'target' or 'targets', not both", {})
        return data

    @model_validator(mode="after")
    def _merge_target(self) -> PipelineParameter:
        if self.target is not None:
            object.__setattr__(self, "targets", (self.target,))
            object.__setattr__(self, "target", None)
        return self


class Pipeline(SpecModel):
    """One ``- pipeline:`` (or ``- blueprint:``) item."""

    kind: ClassVar[str] = "pipeline"

    name: Str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    parameters: tuple[PipelineParameter, ...] = ()
    reuse_executions: Bool = Field(default=False, alias="reuse-executions")

    @model_validator(mode="after")
    def _unique_nodes(self) -> Pipeline:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise spec_error(
                    "duplicate_node",
                    "pipeline {pipeline!r} has more than one node named {name!r}",
                    {"pipeline": self.name, "name": node.name},
                )
            seen.add(node.name)
        return self

    def node(self, name: str) -> ExecutionNode | TaskNode | DeploymentNode | None:
        """The node called ``name``, if any."""
        return next((n for n in self.nodes if n.name == name), None)
