"""Steps: the command, image and declared parameters/inputs of one kind of execution."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, cast

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from valohai_airflow.spec._base import (
    Bool,
    Number,
    PlainDict,
    SpecModel,
    Str,
    StrList,
    StrOrStrList,
    spec_error,
    to_plain,
)
from valohai_airflow.spec.diagnostics import Location
from valohai_airflow.spec.input import Input
from valohai_airflow.spec.parameter import Parameter
from valohai_airflow.spec.stop_condition import expression_problem
from valohai_airflow.spec.yaml_loader import YamlList

_PARAMETER_INDEX = "parameter_index"  # Step.parameter's, in the instance dict
_DURATION_RE = re.compile(r"(?P<value>[.\d]+)\s*(?P<suffix>[a-z]*)", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_seconds(value: Any) -> int | None:
    """valohai-yaml's parse_duration as whole seconds; a unit-less string like "90" means seconds.

    (valohai-yaml 0.61.0 crashes with IndexError on "90"; seconds is what the integer form means.)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise spec_error(
            "duration", "must be seconds or a duration like '1h 30m', got {value!r}", {"value": value}
        )
    if isinstance(value, int):
        if value < 0:
            raise spec_error("duration", "must not be negative, got {value!r}", {"value": value})
        return value or None
    if not isinstance(value, str):
        raise spec_error(
            "duration",
            "must be seconds or a duration like '1h 30m', got {value!r}",
            {"value": to_plain(value)},
        )
    if not value.strip():
        return None
    total = 0.0
    rest = _DURATION_RE.sub("", value).strip()
    if rest:
        raise spec_error(
            "duration", "cannot read {value!r} as a duration (like '1h 30m 5s')", {"value": value}
        )
    for match in _DURATION_RE.finditer(value):
        suffix = match.group("suffix").lower()
        if suffix and suffix[0] not in _DURATION_UNITS:
            raise spec_error(
                "duration",
                "unknown duration unit in {part!r} (use s, m, h, d or w)",
                {"part": match.group(0)},
            )
        try:
            number = float(match.group("value"))
        except ValueError:
            raise spec_error("duration", "cannot read {value!r} as a duration", {"value": value}) from None
        total += number * _DURATION_UNITS[suffix[0] if suffix else "s"]
    if total <= 0:
        raise spec_error("duration", "could not read a positive duration from {value!r}", {"value": value})
    return int(total)


Duration = Annotated[int | None, BeforeValidator(parse_duration_seconds)]


class EnvironmentVariable(SpecModel):
    """An environment variable of a step; defaults must be strings, optional defaults to true."""

    kind: ClassVar[str] = "environment variable"

    name: Str
    default: Str | None = None
    optional: Bool = True
    description: Str | None = None


def _mount_fields(text: str) -> dict[str, Any]:
    """The "/source:/destination" form as the mapping form's keys."""
    if not re.match(r"^/.+:/.+$", text):
        raise spec_error("mount", "mount {value!r} must look like '/source:/destination'", {"value": text})
    source, destination = text.split(":", 1)
    return {"source": source, "destination": destination}


class Mount(SpecModel):
    """A host/volume mount, from "/src:/dst" or the mapping form."""

    kind: ClassVar[str] = "mount"

    source: Str
    destination: Annotated[str, StringConstraints(strict=True, pattern=r"^/.+$")]
    readonly: Bool = False
    type: Str | None = None
    options: PlainDict = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return _mount_fields(data) if isinstance(data, str) else data

    @field_validator("type", mode="after")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else None


def _located_mounts(value: Any) -> Any:
    """The "/src:/dst" string form has no location of its own: give it its list item's, so a mount
    valohai-airflow.yaml does not allow is a warning at its own line (plan/mounts.py)."""
    if not isinstance(value, YamlList):
        return value
    return [
        {**_mount_fields(item), "location": value.item_locations[index]} if isinstance(item, str) else item
        for index, item in enumerate(value)
    ]


Mounts = Annotated[tuple[Mount, ...], BeforeValidator(_located_mounts)]


def _stop_condition(value: str | None) -> str | None:
    problem = None if value is None else expression_problem(value)
    if problem:
        raise spec_error("stop_condition", "is not a valid expression: {problem}", {"problem": problem})
    return value


StopCondition = Annotated[Str | None, AfterValidator(_stop_condition)]


class Output(SpecModel):
    """A declared output; informational only (outputs are whatever lands in /valohai/outputs)."""

    kind: ClassVar[str] = "output"

    name: Str
    description: Str | None = None


class ResourceRange(SpecModel):
    """min/max of one Kubernetes resource (CPU count or memory MB)."""

    kind: ClassVar[str] = "resource"

    min: Number | None = None
    max: Number | None = None


def _devices(value: Any) -> Any:
    if not isinstance(value, dict):
        raise spec_error("devices", "must be a mapping like {{'nvidia.com/gpu': 1}}", {})
    for key, count in value.items():
        if (
            not isinstance(key, str)
            or isinstance(count, bool)
            or not isinstance(count, int | float)
            or count < 1
        ):
            raise spec_error(
                "devices",
                "device {key!r} needs a count of at least 1, got {count!r}",
                {"key": key, "count": count},
            )
    return dict(value)


class StepResources(SpecModel):
    """Kubernetes resource requests of a step."""

    kind: ClassVar[str] = "resources"

    cpu: ResourceRange | None = None
    memory: ResourceRange | None = None
    devices: Annotated[
        dict[str, float | int] | None, BeforeValidator(lambda v: None if v is None else _devices(v))
    ] = None


class Step(SpecModel):
    """One ``- step:`` item."""

    kind: ClassVar[str] = "step"
    value_locations: ClassVar[dict[str, str]] = {"environment": "environment_location"}

    name: Str
    image: Str
    command: StrOrStrList
    parameters: tuple[Parameter, ...] = ()
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    environment: Str | None = None
    environment_location: Location | None = Field(default=None, exclude=True, repr=False)
    environment_variables: tuple[EnvironmentVariable, ...] = Field(default=(), alias="environment-variables")
    environment_variable_groups: StrList = Field(default=(), alias="environment-variable-groups")
    mounts: Mounts = ()
    cache_volumes: StrList = Field(default=(), alias="cache-volumes")
    time_limit_seconds: Duration = Field(default=None, alias="time-limit")
    no_output_timeout_seconds: Duration = Field(default=None, alias="no-output-timeout")
    resources: StepResources | None = None
    runtime_config_preset: Str | None = Field(default=None, alias="runtime-config-preset")
    autorestart: Bool | None = None
    stop_condition: StopCondition = Field(default=None, alias="stop-condition")
    upload_store: Annotated[str, StringConstraints(strict=True, max_length=64)] | None = Field(
        default=None, alias="upload-store"
    )
    icon: Str | None = None
    category: Str | None = None
    description: Str | None = None
    source_path: Str | None = Field(default=None, alias="source-path")

    @model_validator(mode="after")
    def _preset_needs_environment(self) -> Step:
        if self.runtime_config_preset and not self.environment:
            raise spec_error(
                "preset",
                "missing 'environment'; a runtime-config-preset needs an environment too",
                {"name": self.name},
            )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Step:
        for what, items in (
            ("parameter", self.parameters),
            ("input", self.inputs),
            ("environment variable", self.environment_variables),
        ):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise spec_error(
                        "duplicate_name",
                        "{what} {name!r} is defined twice",
                        {"what": what, "name": item.name},
                    )
                seen.add(item.name)
        return self

    def __getstate__(self) -> dict[Any, Any]:
        """Pickled without the parameter index: it is derived, and rebuilt on first use."""
        state: dict[Any, Any] = super().__getstate__()
        if _PARAMETER_INDEX in state["__dict__"]:
            fields = {k: v for k, v in state["__dict__"].items() if k != _PARAMETER_INDEX}
            state = {**state, "__dict__": fields}
        return state

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, if the step has one. Looked up in an index built on first
        use (and again for a copy with other parameters: an override's `model_copy`), so work done
        per parameter (commands, Params, docs) stays linear in the step's parameter count. The index
        sits in the instance dict beside the fields, which pydantic's `==` and dumps ignore."""
        index = self.__dict__.get(_PARAMETER_INDEX)
        if index is None or index[0] is not self.parameters:
            index = self.__dict__[_PARAMETER_INDEX] = (self.parameters, {p.name: p for p in self.parameters})
        return cast(Parameter | None, index[1].get(name))

    def input(self, name: str) -> Input | None:
        """The input called ``name``, if the step has one."""
        return next((i for i in self.inputs if i.name == name), None)

    def environment_variable(self, name: str) -> EnvironmentVariable | None:
        """The environment variable called ``name``, if the step declares one."""
        return next((e for e in self.environment_variables if e.name == name), None)

    def parameter_defaults(self, *, include_flags: bool = True) -> dict[str, Any]:
        """Defaults that are set (valohai-yaml's get_parameter_defaults)."""
        return {
            p.name: p.default
            for p in self.parameters
            if p.default is not None and (include_flags or p.type != "flag")
        }
