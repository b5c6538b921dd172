"""The optional `valohai-airflow.yaml` beside valohai.yaml: the Airflow settings Valohai's schema has no room for.

Per-pipeline DAG settings, schedules that replace Valohai's (UI-configured) triggers, what
`on-error: retry` means, how long an approval waits, whether a deployment node also serves its
endpoints in a local container, and what a Valohai `environment` (machine type) means here: an
Airflow queue and pool, the container's CPU, memory, /dev/shm and GPU limits and its Docker network; and
the run-time environment variables of its nodes (spec/variables.py). Read with the same located YAML loader as
valohai.yaml, so every problem is a Diagnostic with file:line:column. Checks that need valohai.yaml
(a trigger naming an unknown pipeline or parameter) happen in the plan layer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from croniter import CroniterBadCronError, croniter
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, WithJsonSchema, model_validator
from pydantic_core import ErrorDetails

from valohai_airflow.spec._base import (
    Bool,
    Number,
    PlainDict,
    SpecModel,
    Str,
    StrList,
    UnknownKey,
    error_text,
    spec_error,
    to_plain,
)
from valohai_airflow.spec.dag_choice import DagChoice
from valohai_airflow.spec.data_triggers import DataConditions, placeholder_problem
from valohai_airflow.spec.diagnostics import Diagnostics, Location, ValohaiSpecError, shown
from valohai_airflow.spec.hints import closest
from valohai_airflow.spec.source import read_source
from valohai_airflow.spec.variables import NodeSettings, StepSettings, Variables
from valohai_airflow.spec.yaml_loader import MAX_BYTES, YamlMap, load_yaml, locate

SIDECAR_NAME = "valohai-airflow.yaml"

# Airflow's own presets (airflow.utils.dates.cron_presets); '@once' and '@continuous' are not crons.
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def expand_cron(expression: str) -> str:
    """A preset as its five-field cron; a cron as written."""
    return CRON_PRESETS.get(expression.strip(), expression.strip())


def _check_cron(value: str) -> str:
    text = value.strip()
    if text.startswith("@") and text not in CRON_PRESETS:
        guess = closest(text, list(CRON_PRESETS))
        raise spec_error(
            "cron",
            "{value!r} is not a cron preset{hint}; use a five-field cron like '0 9 * * 1' or one of {presets}",
            {
                "value": value,
                "hint": f" (did you mean {guess!r}?)" if guess else "",
                "presets": ", ".join(CRON_PRESETS),
            },
        )
    expanded = expand_cron(text)
    fields = expanded.split()
    if len(fields) != 5:
        raise spec_error(
            "cron",
            "{value!r} has {count} fields; a cron has five: minute hour day-of-month month day-of-week",
            {"value": value, "count": len(fields)},
        )
    try:
        croniter(expanded)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise spec_error(
            "cron", "{value!r} is not a valid cron expression: {reason}", {"value": value, "reason": exc}
        ) from None
    return text


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        guess = closest(value, _zone_names())
        raise spec_error(
            "timezone",
            "unknown time zone {value!r}{hint}; use an IANA name like 'UTC' or 'Europe/Helsinki'",
            {"value": value, "hint": f" (did you mean {guess!r}?)" if guess else ""},
        ) from None
    return value


Cron = Annotated[Str, AfterValidator(_check_cron)]
TimeZone = Annotated[Str, AfterValidator(_check_timezone)]
# Upper bounds of the sidecar's numbers: far above any real setting, far below what breaks
# Airflow's timedelta or Docker (a typo like 1e30 or .inf is an error with its line, not a DAG
# that fails to build or a container that never starts).
MAX_RETRIES = 100
MAX_DELAY_SECONDS = 7 * 86400  # a retry delay
MAX_APPROVAL_SECONDS = 90 * 86400
MAX_HEALTH_SECONDS = 86400
MAX_CONCURRENCY = 10_000  # max_active_runs, max_active_tasks, pool_slots
MAX_CPUS = 1024
MAX_GPUS = 64
MAX_SIZE_BYTES = 1024**5  # 1 PiB: memory, shm_size


def _finite(value: Any) -> Any:
    """A number, and not .inf or .nan (YAML spells both; no delay, timeout or limit means them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise spec_error("finite", "must be a finite number, got {value!r}", {"value": value})
    return value


FiniteNumber = Annotated[Number, BeforeValidator(_finite)]
Retries = Annotated[int, Field(strict=True, ge=0, le=MAX_RETRIES)]
Concurrency = Annotated[int, Field(strict=True, ge=1, le=MAX_CONCURRENCY)]
Seconds = Annotated[FiniteNumber, Field(ge=0, le=MAX_DELAY_SECONDS)]


class PipelineSettings(SpecModel):
    """DAG settings of one pipeline: every node retries `retries` times (infrastructure hiccups);
    `finished_event`: every successful run emits the pipeline's "finished" Asset event, also when no
    trigger of this project names it (for DAGs of your own and other projects scheduled on it)."""

    kind: ClassVar[str] = "pipeline settings"

    tags: StrList = ()
    retries: Retries | None = None
    retry_delay_seconds: Seconds | None = None
    max_active_runs: Concurrency | None = None
    max_active_tasks: Concurrency | None = None
    description: Str | None = None
    finished_event: Bool = False
    variables: Variables = Field(default_factory=dict)
    nodes: dict[str, NodeSettings] = Field(default_factory=dict)


class Trigger(SpecModel):
    """A Valohai scheduled trigger: run `pipeline` (or, Valohai's "Run execution" action, a `step` or a
    `task` blueprint: its DAG) on `cron` in `timezone`, or `after` a data catalogue change
    (spec/data_triggers.py), with `parameters` overridden."""

    kind: ClassVar[str] = "trigger"

    title: Str
    pipeline: Str | None = None
    step: Str | None = None
    task: Str | None = None
    cron: Cron | None = None
    after: DataConditions = ()
    timezone: TimeZone = "UTC"
    parameters: PlainDict = Field(default_factory=dict)
    enabled: Bool = True
    catchup: Bool = False
    start_date: dt.date | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Trigger:
        if sum(name is not None for name in (self.pipeline, self.step, self.task)) != 1:
            raise spec_error(
                "trigger_target",
                "trigger {title!r} needs exactly one of 'pipeline', 'step' or 'task' (what it runs)",
                {"title": self.title},
            )
        if (self.cron is None) == (not self.after):
            raise spec_error(
                "trigger_when",
                "trigger {title!r} needs exactly one of 'cron' (a schedule) or 'after' (a data change)",
                {"title": self.title},
            )
        if self.after:
            if cron_only := sorted({"timezone", "catchup", "start_date"} & self.model_fields_set):
                raise spec_error(
                    "trigger_cron_only",
                    "trigger {title!r}: {keys}: only for a cron, and a data trigger ('after') has none",
                    {"title": self.title, "keys": " and ".join(repr(k) for k in cron_only)},
                )
            for key, value in self.parameters.items():
                if problem := placeholder_problem(value, self.after):
                    raise spec_error(
                        "trigger_placeholder",
                        "trigger {title!r}, parameter {key!r}: {problem}",
                        {"title": self.title, "key": key, "problem": problem},
                    )
        return self

    @property
    def target(self) -> tuple[str, str]:
        """(what it runs: "pipeline", "step" or "task", its name)."""
        for kind in ("pipeline", "step", "task"):
            name = getattr(self, kind)
            if name is not None:
                return kind, name
        raise AssertionError("validated: a trigger has a target")

    @property
    def expression(self) -> str:
        """The five-field cron (presets expanded); only for a trigger with a `cron`."""
        assert self.cron is not None, "a data trigger has no cron"
        return expand_cron(self.cron)

    def fires_at(self, when: dt.datetime) -> bool:
        """Whether this trigger's cron fires at `when` (an aware datetime), read in its own time zone."""
        if self.cron is None:
            return False
        local = when.astimezone(zoneinfo.ZoneInfo(self.timezone)).replace(tzinfo=None)
        return bool(croniter.match(self.expression, local))


class OnErrorRetry(SpecModel):
    """What `on-error: retry` of a node means: Valohai retries; Airflow needs a count and a delay."""

    kind: ClassVar[str] = "on_error_retry"

    retries: Retries = 3
    delay_seconds: Seconds = 60
    backoff: Literal["exponential", "fixed"] = "exponential"
    max_delay_seconds: Seconds | None = 3600


class ApprovalSettings(SpecModel):
    """How long a `require-approval` gate waits before the run stops (never a hung run)."""

    kind: ClassVar[str] = "approval"

    timeout_seconds: Annotated[FiniteNumber, Field(gt=0, le=MAX_APPROVAL_SECONDS)] = 86400


def _check_health_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise spec_error(
            "health_path",
            "{value!r} is not a URL path; write one that starts with '/' and has no spaces, like '/healthz'",
            {"value": value},
        )
    return value


HealthPath = Annotated[
    Str, AfterValidator(_check_health_path), Field(json_schema_extra={"pattern": r"^/\S*$"})
]
HostPort = Annotated[int, Field(strict=True, ge=1, le=65535)]


class DeploymentSettings(SpecModel):
    """What a deployment node does besides publishing its bundle: with `serve`, it starts (or replaces)
    one local container per endpoint and waits until Docker's health check reports it healthy."""

    kind: ClassVar[str] = "deployment settings"

    serve: Bool = False
    health_path: HealthPath = "/"
    health_timeout_seconds: Annotated[FiniteNumber, Field(gt=0, le=MAX_HEALTH_SECONDS)] = 60
    health_interval_seconds: Annotated[FiniteNumber, Field(ge=1, le=MAX_HEALTH_SECONDS)] = 2
    publish: dict[str, HostPort] = Field(default_factory=dict)  # endpoint → host port on 127.0.0.1


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmg])b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY_BYTES = (
    6 * 1024**2
)  # Docker refuses a smaller memory limit ("Minimum memory limit allowed is 6MB")


def parse_size(value: Any) -> int:
    """A Docker size (`16g`, `512m`, `2048k`, `100b`, or a number of bytes) as bytes; like Docker's, the
    units are powers of 1024."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise spec_error(
            "size", "must be a size like '16g' or '512m', or bytes, got {value!r}", {"value": to_plain(value)}
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise spec_error("size", "must be a finite size like '16g', got {value!r}", {"value": value})
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if not match:
            raise spec_error(
                "size",
                "{value!r} is not a size; write a number with b, k, m or g (powers of 1024), like '16g' or '512m'",
                {"value": value},
            )
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    else:
        size = int(value)
    if size < 1:
        raise spec_error("size", "must be at least 1 byte, got {value!r}", {"value": value})
    if size > MAX_SIZE_BYTES:
        raise spec_error("size", "{value!r} is more than 1 PiB; write a size like '16g'", {"value": value})
    return size


def _memory(value: Any) -> int:
    size = parse_size(value)
    if size < MIN_MEMORY_BYTES:
        raise spec_error(
            "size", "{value!r} is below Docker's smallest memory limit, 6m", {"value": to_plain(value)}
        )
    return size


def _gpus(value: Any) -> int | str:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_GPUS):
        return value  # type: ignore[no-any-return]
    raise spec_error(
        "gpus",
        f"must be a whole number of GPUs (1 to {MAX_GPUS}) or 'all', got {{value!r}}",
        {"value": to_plain(value)},
    )


_SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_SIZE_BYTES, "description": "bytes"},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgG][bB]?|[bB])?\s*$"},
    ]
}
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
MemorySize = Annotated[int, BeforeValidator(_memory), WithJsonSchema(_SIZE_SCHEMA)]
Gpus = Annotated[
    int | Literal["all"],
    BeforeValidator(_gpus),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_GPUS}, {"const": "all"}]}),
]
Name = Annotated[str, Field(strict=True, pattern=r"^\S+$")]
_NETWORK_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # Docker's network names; none, bridge, host, default too


def _check_network(value: str) -> str:
    if not re.match(_NETWORK_RE, value):
        raise spec_error(
            "network",
            "{value!r} is not a Docker network; write none, bridge, host, default (the engine's) or the name "
            "of a network the host's operator created (`docker network ls`)",
            {"value": value},
        )
    return value


Network = Annotated[Str, AfterValidator(_check_network), Field(json_schema_extra={"pattern": _NETWORK_RE})]


class EnvironmentSettings(SpecModel):
    """What a Valohai `environment` (a machine type slug) means here: where its nodes run (an Airflow
    queue a worker serves, an Airflow pool) and the limits of their containers."""

    kind: ClassVar[str] = "environment settings"

    queue: Name | None = None  # None: Airflow's [operators] default_queue
    pool: Name | None = None  # None: Airflow's default_pool
    pool_slots: Concurrency | None = None
    cpus: Annotated[FiniteNumber, Field(gt=0, le=MAX_CPUS)] | None = None
    memory: MemorySize | None = None  # bytes
    shm_size: Size | None = None  # bytes
    gpus: Gpus | None = None
    network: Network | None = None  # None: the project's `network`


def _host_folder(value: str) -> str:
    if not value.startswith("/") or ".." in value.split("/"):
        raise spec_error(
            "mount_root",
            "{value!r} must be an absolute host path without '..' (a folder whose contents steps may mount)",
            {"value": value},
        )
    return value


class MountSettings(SpecModel):
    """Which host folders a step's `mounts` may bind into its container (plan/mounts.py): none by
    default, since a mount gives the step's code the host's files."""

    kind: ClassVar[str] = "mounts"

    allow: tuple[Annotated[Str, AfterValidator(_host_folder)], ...] = ()


class ProjectSettings(SpecModel):
    """The whole sidecar; defaults everywhere, so a project without one gets `ProjectSettings()`."""

    kind: ClassVar[str] = SIDECAR_NAME
    yaml_excluded: ClassVar[frozenset[str]] = frozenset({"source"})

    pipelines: dict[str, PipelineSettings] = Field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()
    on_error_retry: OnErrorRetry = Field(default_factory=OnErrorRetry)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    deployments: dict[str, DeploymentSettings] = Field(default_factory=dict)
    environments: dict[str, EnvironmentSettings] = Field(default_factory=dict)
    network: Network | None = None  # None: the Docker engine's default network
    allow_vh_docker_network: Bool = True  # a step's VH_DOCKER_NETWORK variable picks its node's network
    mounts: MountSettings = Field(default_factory=MountSettings)
    variables: Variables = Field(default_factory=dict)  # every node's (spec/variables.py)
    variable_groups: dict[str, Variables] = Field(default_factory=dict)  # environment-variable-groups
    steps: dict[str, StepSettings] = Field(default_factory=dict)
    step_dags: DagChoice = True  # which steps get a DAG of their own (spec/dag_choice.py)
    task_dags: DagChoice = True  # which task blueprints do
    source: str | None = Field(default=None, exclude=True)

    def pipeline(self, name: str) -> PipelineSettings:
        """The settings of one pipeline (defaults when the sidecar does not name it)."""
        return self.pipelines.get(name) or PipelineSettings()

    def emits_finished(self, pipeline: str) -> bool:
        """Whether pipeline `pipeline`'s DAG emits its "finished" Asset event: an enabled data trigger
        here names it (`after: {pipeline: …}`), or its settings ask for it (`finished_event`)."""
        named = any(c.pipeline == pipeline for t in self.triggers if t.enabled for c in t.after)
        return named or self.pipeline(pipeline).finished_event

    def deployment(self, name: str) -> DeploymentSettings:
        """The settings of one deployment, by its name in valohai.yaml (defaults: publish only)."""
        return self.deployments.get(name) or DeploymentSettings()

    def triggers_for(self, pipeline: str, kind: str = "pipeline") -> tuple[Trigger, ...]:
        """The enabled triggers of one pipeline (`kind` "step" / "task": a step's, a blueprint's DAG), in file order."""
        return tuple(t for t in self.triggers if t.enabled and t.target == (kind, pipeline))

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A project without a sidecar pickles as a reference to one shared default: its four models
        were a tenth of unpickling a plan, which a warm parse does for every project."""
        if self == default_settings():
            return default_settings, ()
        return super().__reduce_ex__(protocol)


@lru_cache(maxsize=1)
def default_settings() -> ProjectSettings:
    """The settings of a project without a sidecar (frozen: one instance serves every such plan)."""
    return ProjectSettings()


@dataclass(frozen=True)
class SidecarResult:
    """The settings (None when there are errors) and every diagnostic found."""

    settings: ProjectSettings | None
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def parse_sidecar_file(path: str | os.PathLike[str]) -> SidecarResult:
    """Read and parse a valohai-airflow.yaml; unreadable files become diagnostics."""
    try:
        data = read_source(path)
    except ValohaiSpecError as exc:
        return SidecarResult(None, Diagnostics(list(exc.diagnostics)))
    return parse_sidecar_text(data, str(path))


def parse_sidecar_text(text: str | bytes, filename: str) -> SidecarResult:
    """Parse sidecar content; an empty file (or only comments) means all defaults."""
    diagnostics = Diagnostics()
    if len(text) > MAX_BYTES:
        diagnostics.error(f"file is larger than {MAX_BYTES} bytes; refusing to parse it", Location(filename))
        return SidecarResult(None, diagnostics)
    if not text.strip():
        return SidecarResult(ProjectSettings(source=filename), diagnostics)
    try:
        data = load_yaml(text, filename).data
    except ValohaiSpecError as exc:
        if len(exc.diagnostics) == 1 and exc.diagnostics[0].message.startswith("file has no content"):
            return SidecarResult(ProjectSettings(source=filename), diagnostics)
        diagnostics.items.extend(exc.diagnostics)
        return SidecarResult(None, diagnostics)
    if not isinstance(data, YamlMap):
        diagnostics.error(
            f"the top level of {SIDECAR_NAME} must be a mapping with keys "
            f"{', '.join(ProjectSettings.yaml_keys())}",
            Location(filename, 1, 1),
        )
        return SidecarResult(None, diagnostics)
    sink: list[UnknownKey] = []
    settings: ProjectSettings | None = None
    try:
        settings = ProjectSettings.model_validate(data, context={"unknown_keys": sink})
    except ValidationError as exc:
        _report_validation(exc, data, diagnostics)
    for unknown in sink:
        message = f"{unknown.kind}: unknown key {unknown.key!r}"
        guess = closest(unknown.key, unknown.valid)
        if guess:
            message += f" (did you mean {guess!r}?)"
        diagnostics.error(message, unknown.location, f"valid keys: {', '.join(unknown.valid)}")
    diagnostics.items.sort(key=lambda d: (d.location.line, d.location.column))
    if diagnostics.errors or settings is None:
        return SidecarResult(None, diagnostics)
    return SidecarResult(settings.model_copy(update={"source": filename}), diagnostics)


def _report_validation(exc: ValidationError, data: YamlMap, diagnostics: Diagnostics) -> None:
    seen: set[tuple[Any, ...]] = set()
    for error in exc.errors(include_url=False):
        path, label = _describe(data, tuple(error["loc"]))
        key = (path, error["type"])
        if key in seen:
            continue
        seen.add(key)
        field_name = str(path[-1]) if path and isinstance(path[-1], str) else None
        text = _error_text(error, field_name)
        if field_name and label.endswith(repr(field_name)):  # "variable 'X': 'X': ..." says it twice
            text = text.removeprefix(f"'{field_name}': ")
        diagnostics.error(f"{label}: {text}", locate(data, path, Location("?")))


_LABELS = {
    "variables": "variable",
    "variable_groups": "variable group",
    "steps": "step settings",
    "nodes": "node settings",
}


def _describe(data: YamlMap, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], str]:
    """pydantic's loc → the real path in the file and a label like "trigger 'Weekly retraining'"."""
    path: list[Any] = []
    label = SIDECAR_NAME
    current: Any = data
    for part in loc:
        if isinstance(current, dict) and part in current:
            parent_key = path[-1] if path else None
            path.append(part)
            current = current[part]
            if parent_key == "pipelines" and len(path) == 2:
                label = f"pipeline settings {part!r}"
            elif parent_key == "deployments" and len(path) == 2:
                label = f"deployment settings {part!r}"
            elif parent_key == "environments" and len(path) == 2:
                label = f"environment settings {part!r}"
            elif parent_key in _LABELS and not isinstance(part, int):
                label = f"{_LABELS[parent_key]} {part!r}"
            elif len(path) == 1 and part in ("on_error_retry", "approval"):
                label = str(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
            title = current.get("title") if isinstance(current, dict) else None
            label = f"trigger {title!r}" if isinstance(title, str) else f"trigger #{part + 1}"
        elif isinstance(current, dict) and part == loc[-1]:
            path.append(part)  # a missing key: report at its mapping
            break
    return tuple(path), label


_VARIABLE_ERRORS = ("connection_field", "variable_value", "variable_source", "variable_name")


def _error_text(error: ErrorDetails, field_name: str | None) -> str:
    """The sidecar's own wording for its names and its checks; the rest as in valohai.yaml."""
    subject = f"'{field_name}'" if field_name else "value"
    if error["type"] == "string_pattern_mismatch":
        return f"{subject} must be a name without spaces, got {shown(to_plain(error.get('input')))}"
    if error["type"] in (
        "cron",
        "timezone",
        "health_path",
        "size",
        "gpus",
        "finite",
        "network",
        *_VARIABLE_ERRORS,
        "dag_choice",
    ):
        return f"{subject}: {error['msg']}"
    return error_text(error, [field_name] if field_name else [])


def sidecar_json_schema() -> dict[str, Any]:
    """The JSON Schema of valohai-airflow.yaml (editors and CI can validate the file with it)."""
    schema: dict[str, Any] = _clean_schema(
        ProjectSettings.model_json_schema(by_alias=True, mode="validation")
    )
    schema["$defs"].pop("Location", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = SIDECAR_NAME
    schema["description"] = (
        "Airflow settings of a valohai-airflow project, beside valohai.yaml: per-pipeline DAG settings, "
        "scheduled triggers, on-error retry and approval settings, local serving of deployments, and the Airflow "
        "queue, pool, container resources and network of each Valohai environment (machine type), and run-time "
        "environment variables from literals, Airflow Variables and Airflow Connections (project, pipeline, step "
        "and node level, and the groups valohai.yaml's environment-variable-groups name)."
    )
    return schema


_NUMBER = [{"type": "number"}, {"type": "integer"}]
_VARIABLE_REF = {"$ref": "#/$defs/VariableSpec"}
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum"}


def _clean_schema(node: Any) -> Any:
    """pydantic's schema minus our internals (location, source), with JSON Schema bound names."""
    if isinstance(node, list):
        return [_clean_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: _clean_schema(v) for k, v in value.items() if k not in ("location", "source")}
        else:
            out[_BOUNDS.get(str(key), str(key))] = _clean_schema(value)
    if out.get("anyOf") == _NUMBER:
        del out["anyOf"]
        out["type"] = "number"
    if out == _VARIABLE_REF:  # `NAME: text` is short for `NAME: {value: text}`
        return {"anyOf": [{"type": "string"}, out]}
    return out


def sidecar_json_schema_text() -> str:
    """The shipped `schemas/valohai-airflow.schema.json`, byte for byte."""
    return json.dumps(sidecar_json_schema(), indent=2, ensure_ascii=False) + "\n"
