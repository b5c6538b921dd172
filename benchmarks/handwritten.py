"""The loader benchmark's baseline: Python source an expert would write by hand for the loader's DAGs.

It uses the operator classes the loader's tasks are (ValohaiExecutionOperator, its mapped form via
`partial().expand()`, the variants, deployment, approval and error tasks), with the arguments the
factory passes them, so the cost Airflow adds per operator class level is on both sides. What those
operators take is the plan of their node and pipeline: the file spells them out as constructor calls
of the plan classes (a node's step once, shared by its nodes, each node once, shared by its pipeline
and its task; arguments left out where they equal the default), as one writes a data structure by
hand. Dependencies are one `[upstreams] >> task`
per task, and the Params are set on the DAG once its tasks exist (not passed to `DAG(params=...)`,
which makes every operator deep-copy them), as the factory does. DAG-level settings beyond ids,
names, docs and tags (a schedule, run limits) are left out: a few calls per DAG, not per task.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from pathlib import Path, PurePath
from typing import Any

import pydantic

LABEL_DAG = "valohai-airflow.dag"
# The arguments the factory and control_tasks.py pass each class (whatever of them a task got).
EXECUTION_KEYS = (
    "project_name",
    "project_root",
    "pipeline",
    "node",
    "dag_key",
    "docker_url",
    "doc_md",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "queue",
    "pool",
    "pool_slots",
    "max_active_tis_per_dagrun",
)
MAPPED_KEYS = ("task_id", "task_display_name", "map_index_template", *EXECUTION_KEYS)
KEYS_BY_CLASS = {
    "ValohaiExecutionOperator": EXECUTION_KEYS,
    "ValohaiVariantsOperator": ("pipeline", "node"),
    "ValohaiDeploymentOperator": (
        *("project_name", "pipeline", "node", "docker_url", "project_root", "serving", "network", "doc_md"),
    ),
    "ApprovalGate": ("task_id", "task_display_name", "node", "subject", "body", "response_timeout"),
    "FailWithMessageOperator": ("task_id", "message"),
}


class Source:
    """Python literals for values, sharing each object referenced more than once as a variable."""

    def __init__(self) -> None:
        self.imports: dict[tuple[str, str], str] = {}  # (module, name) → the name used in the file
        self.lines: list[str] = []
        self._shared: dict[int, str] = {}
        self._counts: dict[int, int] = {}
        self._keep: list[object] = []  # counted objects stay alive, so their ids stay theirs

    def name_of(self, cls: type) -> str:
        key = (cls.__module__, cls.__qualname__)
        if key not in self.imports:
            taken = set(self.imports.values())
            name = cls.__qualname__ if cls.__qualname__ not in taken else f"{cls.__qualname__}_{len(taken)}"
            self.imports[key] = name
        return self.imports[key]

    def count(self, value: object) -> None:
        """Count the references to every plan object below `value` (call before `expr`)."""
        pending = [value]
        while pending:
            item = pending.pop()
            if _fields(item) is not None:
                seen = self._counts.get(id(item), 0)
                self._counts[id(item)] = seen + 1
                if seen:
                    continue
                self._keep.append(item)
                pending += [getattr(item, name) for name in _fields(item) or ()]
            elif isinstance(item, (list, tuple, set, frozenset)):
                pending += list(item)
            elif isinstance(item, dict):
                pending += [*item.keys(), *item.values()]

    def expr(self, value: object) -> str:
        """`value` as an expression; objects counted more than once become variables defined first."""
        if isinstance(value, enum.Enum):  # before str: a StrEnum member is a str
            return f"{self.name_of(type(value))}.{value.name}"
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return repr(value)
        if isinstance(value, datetime.timedelta):
            return f"{self.name_of(datetime.timedelta)}(seconds={value.total_seconds()!r})"
        if isinstance(value, (datetime.date, datetime.time)):  # a YAML timestamp in a parameter's value
            return f"{self.name_of(type(value))}.fromisoformat({value.isoformat()!r})"
        if isinstance(value, PurePath):
            return f"{self.name_of(Path)}({str(value)!r})"
        if isinstance(value, tuple):
            return "(" + "".join(f"{self.expr(v)}, " for v in value) + ")"
        if isinstance(value, list):
            return "[" + ", ".join(self.expr(v) for v in value) + "]"
        if isinstance(value, (set, frozenset)):
            inner = ", ".join(sorted(self.expr(v) for v in value))
            return (
                f"frozenset({{{inner}}})"
                if isinstance(value, frozenset)
                else f"{{{inner}}}"
                if inner
                else "set()"
            )
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.expr(k)}: {self.expr(v)}" for k, v in value.items()) + "}"
        if _fields(value) is not None:
            if id(value) in self._shared:
                return self._shared[id(value)]
            call = self._call(value)
            if self._counts.get(id(value), 0) > 1:
                name = f"_{len(self._shared)}"
                self.lines.append(f"{name} = {call}")
                self._shared[id(value)] = name
                return name
            return call
        raise TypeError(f"no literal for {type(value).__qualname__}: {value!r}"[:300])

    def _call(self, value: Any) -> str:
        arguments = ", ".join(f"{name}={self.expr(getattr(value, name))}" for name in _fields(value) or ())
        return f"{self.name_of(type(value))}({arguments})"

    def header(self) -> str:
        return "\n".join(
            f"from {module} import {qualname.split('.')[0]}" + (f" as {name}" if name != qualname else "")
            for (module, qualname), name in sorted(self.imports.items())
        )


def _fields(value: object) -> tuple[str, ...] | None:
    """The constructor arguments of a plan dataclass or a spec (pydantic) model that differ from
    their defaults (what one spells out by hand); None for other values."""
    if isinstance(value, type):
        return None
    if dataclasses.is_dataclass(value):
        return tuple(
            f.name for f in dataclasses.fields(value) if f.init and not _is_default(getattr(value, f.name), f)
        )
    if isinstance(value, pydantic.BaseModel):
        return tuple(
            name
            for name, info in type(value).model_fields.items()
            # set explicitly: a validator may require it even at its default (a task's `parameters: []`)
            if name in value.model_fields_set or not _is_default(getattr(value, name), info)
        )
    return None


def _is_default(value: object, field: Any) -> bool:
    """`value` equals the field's default (dataclass field or pydantic FieldInfo)."""
    factory = getattr(field, "default_factory", None)
    default = factory() if factory is not None and factory is not dataclasses.MISSING else field.default
    if default is dataclasses.MISSING or type(default).__name__ == "PydanticUndefinedType":
        return False
    return type(default) is type(value) and bool(default == value)


def _arguments(task: Any) -> dict[str, Any]:
    """What the factory passed the task's class (its recorded init arguments, per class)."""
    kind = type(task).__name__
    if kind == "MappedOperator":
        given = {"task_id": task.task_id, **task.partial_kwargs}  # expand() took task_id out
        return {k: given[k] for k in MAPPED_KEYS if k in given}
    if kind not in KEYS_BY_CLASS:
        raise TypeError(f"handwritten.py does not know the arguments of {kind} (task {task.task_id})")
    given = task._BaseOperator__init_kwargs
    arguments = {k: given[k] for k in KEYS_BY_CLASS[kind] if k in given}
    if kind == "ValohaiExecutionOperator":
        arguments.setdefault("dag_key", task.labels[LABEL_DAG])
    return arguments


def handwritten_source(dags: dict[str, Any]) -> str:
    """Python that builds the given DAGs with the loader's operator classes, written out by hand."""
    from airflow.sdk import DAG, Param
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    source = Source()
    dag_name, param_name = source.name_of(DAG), source.name_of(Param)
    source.lines.append(f"START = {source.name_of(datetime.datetime)}.fromisoformat({_start(dags)!r})")
    for dag in dags.values():
        for task in dag.tasks:
            source.count(_arguments(task))
    body: list[str] = []
    for dag_id, dag in dags.items():
        body.append(
            f"with {dag_name}(dag_id={dag_id!r}, dag_display_name={dag.dag_display_name!r}, "
            f"description={dag.description!r}, schedule=None, start_date=START, "
            f"catchup=False, doc_md={dag.doc_md!r}, tags={sorted(dag.tags)!r}) as dag:"
        )
        body.append("    t = {}")
        for task in dag.tasks:  # upstreams first: a mapped task's variants exist before it
            arguments = _arguments(task)
            if task.trigger_rule != "all_success":
                arguments["trigger_rule"] = task.trigger_rule
            spelled = ", ".join(f"{k}={source.expr(v)}" for k, v in arguments.items())
            if isinstance(task, MappedOperator):
                cls = source.name_of(task.operator_class)
                ((key, arg),) = task.expand_input.value.items()
                feeding = arg.operator.task_id
                body.append(
                    f"    t[{task.task_id!r}] = {cls}.partial({spelled}).expand({key}=t[{feeding!r}].output)"
                )
            else:
                body.append(f"    t[{task.task_id!r}] = {source.name_of(type(task))}({spelled})")
        for task in dag.tasks:
            upstreams = sorted(task.upstream_task_ids - _fed_by(task))
            if upstreams:
                body.append(f"    [{', '.join(f't[{up!r}]' for up in upstreams)}] >> t[{task.task_id!r}]")
        params = {key: (p.value if p.has_value else None, dict(p.schema)) for key, p in dag.params.items()}
        body.append(f"dag.params = {{k: {param_name}(v, **s) for k, (v, s) in {params!r}.items()}}")
    return "\n".join([source.header(), *source.lines, *body]) + "\n"


def _fed_by(task: Any) -> set[str]:
    """The task a mapped task's `expand()` reads from: `.output` already makes it an upstream."""
    expand_input = getattr(task, "expand_input", None)
    if expand_input is None:
        return set()
    return {arg.operator.task_id for arg in expand_input.value.values()}


def _start(dags: dict[str, Any]) -> str:
    starts = {dag.start_date.isoformat() for dag in dags.values()}
    if len(starts) != 1:
        raise ValueError(f"the DAGs start at {sorted(starts)}: handwritten.py writes one START")
    return starts.pop()
