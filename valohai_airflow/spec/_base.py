"""Shared pieces of the spec models: the frozen base class, strict scalar types, unknown-key handling.

Models are validated from the located YAML data (YamlMap); the base class takes the mapping's
location from it and reports unknown keys through the validation context instead of failing the
whole model, so one pass reports every problem with its own file:line:column.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from valohai_airflow.spec.diagnostics import ECHO_LIMIT, Location, Severity, shown
from valohai_airflow.spec.yaml_loader import YamlList, YamlMap

UNKNOWN_LOCATION = Location("<memory>")


def spec_error(kind: str, template: str, context: dict[str, Any] | None = None) -> PydanticCustomError:
    """A pydantic error whose message is formatted here (pydantic's own templates cannot do ``!r``)."""
    message = template.format(**{key: _Echoed(value) for key, value in (context or {}).items()})
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))


def error_text(error: ErrorDetails, fields: Sequence[str]) -> str:
    """One pydantic error as a sentence about the user's file (valohai.yaml or its sidecar);
    `fields`: the keys it is about, outermost first, none for a list item or the whole value."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = shown(to_plain(error.get("input")))
    subject = f"'{'.'.join(fields)}'" if fields else "value"
    if kind == "missing":
        return f"missing required key {fields[-1]!r}" if fields else "missing required value"
    texts = {
        "string_type": f"{subject} must be a string, got {value}",
        "bool_type": f"{subject} must be true or false, got {value}",
        "int_type": f"{subject} must be an integer, got {value}",
        "float_type": f"{subject} must be a number, got {value}",
        "literal_error": f"{subject} must be {ctx.get('expected')}, got {value}",
        "string_too_long": f"{subject} {value} is too long (at most {ctx.get('max_length')} characters)",
        "string_pattern_mismatch": f"{subject} {value} does not match the pattern {ctx.get('pattern')!r}",
        "model_type": f"{subject} must be a mapping, got {value}",
        "model_attributes_type": f"{subject} must be a mapping, got {value}",
        "dict_type": f"{subject} must be a mapping, got {value}",
        "tuple_type": f"{subject} must be a list, got {value}",
        "list_type": f"{subject} must be a list, got {value}",
        "greater_than_equal": f"{subject} must be at least {ctx.get('ge')}, got {value}",
        "greater_than": f"{subject} must be more than {ctx.get('gt')}, got {value}",
        "less_than_equal": f"{subject} must be at most {ctx.get('le')}, got {value}",
        "date_type": f"{subject} must be a date like 2026-01-05, got {value}",
        "date_from_datetime_parsing": f"{subject} must be a date like 2026-01-05, got {value}",
    }
    if kind in texts:
        return texts[kind]
    return f"{subject} {error['msg']}" if fields else str(error["msg"])


class _Echoed:
    """A value in a message template: `!r` shows it through `shown` (cut when long), `{x}` as str."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return shown(self.value)

    def __format__(self, spec: str) -> str:
        if isinstance(self.value, str) and len(self.value) > ECHO_LIMIT and not spec:
            return f"{self.value[:ECHO_LIMIT]}… ({len(self.value):,} characters)"
        return format(self.value, spec)


@dataclass(frozen=True)
class UnknownKey:
    """An unknown key found while validating; parse.py turns it into a diagnostic."""

    kind: str
    owner: str | None
    key: Any
    location: Location
    valid: tuple[str, ...]
    severity: Severity
    hint: str | None


def to_plain(value: Any) -> Any:
    """Located containers to plain dicts/lists, so models hold ordinary data."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise spec_error("number_type", "must be a number, got {value!r}", {"value": value})
    return value


def _str_or_str_list(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise spec_error(
        "str_or_list", "must be a string or a list of strings, got {value!r}", {"value": to_plain(value)}
    )


def _str_list(value: Any) -> Any:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise spec_error("str_list", "must be a list of strings, got {value!r}", {"value": to_plain(value)})


def _plain_dict(value: Any) -> Any:
    if isinstance(value, dict):
        return to_plain(value)
    raise spec_error("dict_type", "must be a mapping, got {value!r}", {"value": to_plain(value)})


Str = StrictStr
Bool = StrictBool
Int = StrictInt
Number = Annotated[float | int, BeforeValidator(_number)]
StrOrStrList = Annotated[tuple[str, ...], BeforeValidator(_str_or_str_list)]
StrList = Annotated[tuple[str, ...], BeforeValidator(_str_list)]
PlainAny = Annotated[Any, BeforeValidator(to_plain)]
PlainDict = Annotated[dict[str, Any], BeforeValidator(_plain_dict)]


class SpecModel(BaseModel):
    """Base for every valohai.yaml object: frozen, strict about keys, carries its Location."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_alias=True,
        validate_by_name=True,
        arbitrary_types_allowed=True,
    )

    location: Location = Field(default=UNKNOWN_LOCATION, exclude=True, repr=False)

    kind: ClassVar[str] = "item"
    yaml_excluded: ClassVar[frozenset[str]] = frozenset()
    unknown_key_severity: ClassVar[Severity] = Severity.ERROR
    unknown_key_hint: ClassVar[str | None] = None
    # YAML key → the field that receives the Location of its value (for checks made later, in plan)
    value_locations: ClassVar[dict[str, str]] = {}

    @classmethod
    @functools.cache
    def yaml_keys(cls) -> tuple[str, ...]:
        """The keys this object accepts in a valohai.yaml file (worked out once per class)."""
        keys = []
        for name, info in cls.model_fields.items():
            if name == "location":
                continue
            key = info.alias or name
            if key not in cls.yaml_excluded and name not in cls.value_locations.values():
                keys.append(key)
        return tuple(keys)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any, info: ValidationInfo) -> Any:
        """From a YamlMap: keep known keys, report the others, attach the location."""
        if not isinstance(data, YamlMap):
            if isinstance(data, YamlList):
                raise spec_error(
                    "mapping_type", "must be a mapping with keys {keys}", {"keys": ", ".join(cls.yaml_keys())}
                )
            return data
        known = cls.yaml_keys()
        open_ended = cls.model_config.get("extra") == "allow"
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if key in known or (open_ended and key != "location"):
                out[key] = value
                continue
            sink = info.context.get("unknown_keys") if isinstance(info.context, dict) else None
            if sink is None:
                raise spec_error("unknown_key", "unknown key {key!r}", {"key": key})
            owner = data.get("name")
            sink.append(
                UnknownKey(
                    kind=cls.kind,
                    owner=owner if isinstance(owner, str) else None,
                    key=key,
                    location=data.key_locations.get(key, data.location),
                    valid=known,
                    severity=cls.unknown_key_severity,
                    hint=cls.unknown_key_hint,
                )
            )
        out["location"] = data.location
        for key, target in cls.value_locations.items():
            if key in out:
                out[target] = data.value_locations.get(key, data.location)
        return out
