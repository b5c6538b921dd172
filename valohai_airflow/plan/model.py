"""The compiled, checked form of a project: what the airflow layer renders and the runtime executes.

Everything here is plain, immutable and JSON-friendly so a plan can be cached by content hash and
handed to a worker without re-reading YAML.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from valohai_airflow.plan.conf_keys import node_parameter_key
from valohai_airflow.plan.mounts import BindMount
from valohai_airflow.spec.diagnostics import Diagnostic, Location
from valohai_airflow.spec.endpoint import Endpoint
from valohai_airflow.spec.parameter import Parameter
from valohai_airflow.spec.pickling import pickled_by_fields
from valohai_airflow.spec.pipeline import socket_text
from valohai_airflow.spec.sidecar import ProjectSettings
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task

if TYPE_CHECKING:
    from valohai_airflow.plan.variables import VariablePlan


class EdgeKind(enum.StrEnum):
    """The socket types of valohai.yaml edges (the plural spellings are normalised to these)."""

    OUTPUT = "output"
    INPUT = "input"
    PARAMETER = "parameter"
    METADATA = "metadata"
    FILE = "file"
    DEPLOYMENT = "deployment"
    ENVIRONMENT_VARIABLE = "environment-variable"
    DEPENDENCY = "dependency"


class DagKind(enum.StrEnum):
    """What one DAG of a project runs: a pipeline, or a step or task blueprint on its own (plan/standalone.py)."""

    PIPELINE = "pipeline"
    STEP = "step"
    TASK = "task"


class NodeKind(enum.StrEnum):
    EXECUTION = "execution"
    TASK = "task"
    DEPLOYMENT = "deployment"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class EdgePlan:
    source_node: str  # node names (not task ids)
    source_kind: EdgeKind
    source_key: str
    target_node: str
    target_kind: EdgeKind
    target_key: str
    location: Location

    @property
    def source_text(self) -> str:
        """`node.kind.key` of the source, as valohai.yaml spells an edge's end."""
        return socket_text(self.source_node, self.source_kind.value, self.source_key)

    @property
    def target_text(self) -> str:
        return socket_text(self.target_node, self.target_kind.value, self.target_key)

    @property
    def text(self) -> str:
        """The edge in messages, logs and docs: `a.output.x → b.input.y`."""
        return f"{self.source_text} → {self.target_text}"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ActionPlan:
    when: tuple[str, ...]  # node-starting | node-complete | node-error
    then: tuple[str, ...]  # stop-pipeline | require-approval | error-pipeline | noop
    condition: tuple[str, ...] = ()  # the `if` expressions, all must hold


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class MachinePlan:
    """Where a node's containers run and what they may use: its effective Valohai `environment`
    (the step's, or the node override's) mapped by `environments:` of valohai-airflow.yaml, with the
    step's own `resources` (cpu, memory) winning over the environment's limits. None everywhere means
    Airflow's default (the default queue and pool, one slot) and no container limit."""

    environment: str | None = None  # the Valohai machine type slug, as written
    mapped: bool = False  # valohai-airflow.yaml maps `environment`
    queue: str | None = None
    pool: str | None = None
    pool_slots: int | None = None
    cpus: float | None = None  # a hard CPU quota (fractions allowed)
    memory: int | None = None  # bytes
    shm_size: int | None = None  # bytes
    gpus: int | str | None = None  # a count, or "all"
    cpus_from: str = ""  # where the limit is set, for messages: "`resources.cpu` of step 'x'"
    memory_from: str = ""
    network: str | None = None  # a Docker network mode or name; None: the engine's default network
    network_from: str = "the Docker engine's default"  # who asked for `network`, for messages
    step_network: bool = True  # a step's VH_DOCKER_NETWORK variable may pick the network
    mounts: tuple[BindMount, ...] = ()  # the step's `mounts` that valohai-airflow.yaml allows (mounts.py)

    @property
    def operator_arguments(self) -> dict[str, Any]:
        """The Airflow task arguments it sets (queue, pool, pool_slots); unset ones keep Airflow's defaults."""
        arguments = {"queue": self.queue, "pool": self.pool, "pool_slots": self.pool_slots}
        return {k: v for k, v in arguments.items() if v is not None}


class Origin(enum.StrEnum):
    """What decides a node's value (plan/sources.py builds the table; its docstring has the order)."""

    DEFAULT = "default"  # the step's own value (an environment variable's `default`)
    RUN_CONF = "run-conf"  # the node's run-conf key (the trigger form's field), else the step's default
    PIPELINE_PARAMETER = "pipeline-parameter"
    EDGE = "edge"
    BLUEPRINT = "blueprint"  # the task blueprint varies it


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ValueSource:
    """Where one parameter, input or environment variable of a node gets its value."""

    name: str
    origin: Origin
    conf_key: str = ""  # the run-conf key that sets it (read even when the form hides it); "" for none
    offered: bool = False  # the trigger form offers `conf_key`
    pipeline_parameter: PipelineParameterPlan | None = None  # the one targeting it
    edges: tuple[EdgePlan, ...] = ()  # the edges into it, in file order (at most one unless an input)
    blueprint: str | None = None  # the task blueprint that varies it


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class NodeSources:
    """A node's table of value sources (plan/sources.py): what Params, docs, sidecar checks and
    run time read instead of working out edges, pipeline parameters and blueprints again."""

    edges: tuple[EdgePlan, ...] = ()  # every edge into the node (dependency and file too), file order
    parameters: tuple[ValueSource, ...] = ()  # the effective step's order
    inputs: tuple[ValueSource, ...] = ()
    environment: tuple[ValueSource, ...] = ()  # the step's variables, then those only edges fill
    _parameters: dict[str, ValueSource] = field(init=False, repr=False, compare=False)
    _inputs: dict[str, ValueSource] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parameters", {s.name: s for s in self.parameters})
        object.__setattr__(self, "_inputs", {s.name: s for s in self.inputs})

    def parameter(self, name: str) -> ValueSource:
        return self._parameters[name]

    def input(self, name: str) -> ValueSource:
        return self._inputs[name]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class NodePlan:
    """One pipeline node. `step` is the node's effective step: overrides already merged into it
    (image, command, parameters, inputs, environment variables), so command building and the
    Airflow Params read one object."""

    name: str  # as written in valohai.yaml (the display name)
    task_id: str  # stable, Airflow-safe
    kind: NodeKind
    step: Step | None  # None only for deployment nodes
    on_error: str = "stop-all"
    edge_merge_mode: str = "replace"
    actions: tuple[ActionPlan, ...] = ()
    blueprint: Task | None = None  # task nodes: the top-level task whose variants the node runs
    deployment: str | None = None  # deployment nodes
    endpoints: tuple[str, ...] = ()
    endpoint_specs: tuple[Endpoint, ...] = ()  # deployment nodes: the definitions of `endpoints`
    aliases: tuple[str, ...] = ()
    location: Location = field(default_factory=lambda: Location(""))
    machine: MachinePlan = field(default_factory=MachinePlan)  # execution and task nodes
    # Set once the pipeline's edges are known; derived, so left out of the hash (a pipeline
    # parameter's list default would make the node unhashable).
    sources: NodeSources = field(default_factory=NodeSources, hash=False)
    # Its run-time environment variables by name, sources only (plan/variables.py); set last.
    variables: tuple[VariablePlan, ...] = field(default=(), hash=False)

    def __str__(self) -> str:
        """Short, because Airflow's serializer stores str() of a mapped task's plan arguments."""
        return f"node {self.name!r}"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PipelineParameterPlan:
    name: str
    targets: tuple[tuple[str, str], ...]  # (node name, parameter name)
    default: Any
    description: str | None = None
    location: Location = field(default_factory=lambda: Location(""))
    parameter: Parameter | None = None  # the first target's step parameter: type, bounds, choices

    @property
    def target_texts(self) -> tuple[str, ...]:
        """The targets as valohai.yaml writes them (`node.parameter.name`)."""
        return tuple(node_parameter_key(node, name) for node, name in self.targets)

    def form_parameter(self) -> Parameter | None:
        """The parameter the trigger form and trigger checks type it as: its target's, under its own
        name; a list default into a single-valued target spreads (one execution per item)."""
        if self.parameter is None:
            return None
        update: dict[str, Any] = {
            "name": self.name,
            "description": self.description or self.parameter.description,
        }
        if isinstance(self.default, list) and self.parameter.multiple in (None, "none"):
            update["multiple"] = "separate"
        return self.parameter.model_copy(update=update)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PipelinePlan:
    name: str  # as written (the DAG's display name)
    nodes: tuple[NodePlan, ...]  # in topological order
    edges: tuple[EdgePlan, ...]
    parameters: tuple[PipelineParameterPlan, ...] = ()
    reuse_executions: bool = False
    location: Location = field(default_factory=lambda: Location(""))
    kind: DagKind = DagKind.PIPELINE  # a step or blueprint DAG is a one-node pipeline named after it
    # Indexes over `nodes`, so that per-node lookups keep building a DAG linear in nodes + edges (a
    # scan per node is nodes × edges: minutes at a few thousand nodes); each node's table holds its edges.
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)
    _upstreams: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        positions = {node.name: i for i, node in enumerate(self.nodes)}
        upstreams = {
            node.name: tuple(sorted({e.source_node for e in node.sources.edges}, key=positions.__getitem__))
            for node in self.nodes
            if node.sources.edges
        }
        object.__setattr__(self, "_positions", positions)
        object.__setattr__(self, "_upstreams", upstreams)

    def __str__(self) -> str:
        return f"pipeline {self.name!r}"

    @property
    def title(self) -> str:
        """What it is in messages (unique within a project): `pipeline "x"`, `the DAG of step "x"`,
        `the DAG of task blueprint "x"`."""
        if self.kind is DagKind.PIPELINE:
            return f'pipeline "{self.name}"'
        return f'the DAG of {"task blueprint" if self.kind is DagKind.TASK else "step"} "{self.name}"'

    def node(self, name: str) -> NodePlan:
        return self.nodes[self._positions[name]]

    def edges_into(self, node_name: str) -> tuple[EdgePlan, ...]:
        """The edges whose target is this node, in file order (its table's)."""
        position = self._positions.get(node_name)
        return () if position is None else self.nodes[position].sources.edges

    def upstreams(self, node_name: str) -> tuple[str, ...]:
        """The nodes this node waits for (any edge, dependency edges included), in pipeline order."""
        return self._upstreams.get(node_name, ())


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ProjectPlan:
    """One folder with a valohai.yaml: the unit a team drops into the dags folder."""

    name: str  # the folder's name
    root: str  # absolute path of the folder holding valohai.yaml
    source: str  # absolute path of valohai.yaml
    content_hash: str
    pipelines: tuple[PipelinePlan, ...]
    diagnostics: tuple[Diagnostic, ...] = ()  # warnings (a plan with errors is never built)
    settings: ProjectSettings = field(default_factory=ProjectSettings)  # valohai-airflow.yaml, or defaults
    standalone: tuple[PipelinePlan, ...] = ()  # the chosen steps and task blueprints, each a DAG of its own

    @property
    def dag_plans(self) -> tuple[PipelinePlan, ...]:
        """Every plan that becomes a DAG: the pipelines, then the steps and blueprints on their own."""
        return self.pipelines + self.standalone
