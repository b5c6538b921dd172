"""Step parameters (``param-item``) and valohai-yaml's value coercion rules for them."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec._base import Bool, Number, PlainAny, SpecModel, Str, spec_error, to_plain

ParameterType = Literal["string", "integer", "float", "flag"]
MultipleMode = Literal["none", "repeat", "separate"]


class ParameterValueError(ValohaiAirflowError):
    """A value that a parameter does not accept (wrong type, out of range, not a choice)."""

    def __init__(self, parameter: str, value: Any, problems: list[str]) -> None:
        self.parameter = parameter
        self.value = value
        self.problems = problems
        super().__init__(f"parameter {parameter!r}: value {value!r} is invalid: {'; '.join(problems)}")


class ParameterWidget(SpecModel):
    """UI widget of a parameter (``widget: {type, settings}``); has no effect on runs."""

    model_config = SpecModel.model_config | {"extra": "allow"}
    kind: ClassVar[str] = "widget"

    type: Str
    settings: PlainAny = None


class Parameter(SpecModel):
    """A step parameter; defaults follow valohai-yaml (multiple → list, flags optional with [True, False])."""

    kind: ClassVar[str] = "parameter"

    name: Str
    type: ParameterType = "string"
    default: PlainAny = None
    optional: Bool = False
    pass_as: Str | None = Field(default=None, alias="pass-as")
    pass_true_as: Str | None = Field(default=None, alias="pass-true-as")
    pass_false_as: Str | None = Field(default=None, alias="pass-false-as")
    description: Str | None = None
    min: Number | None = None
    max: Number | None = None
    choices: list[Any] | None = None
    multiple: MultipleMode | None = None
    multiple_separator: Str = Field(default=",", alias="multiple-separator")
    widget: Str | ParameterWidget | None = None
    category: Str | None = None

    @field_validator("choices", mode="before")
    @classmethod
    def _choices(cls, value: Any) -> Any:
        if value is None or isinstance(value, list | tuple):
            return to_plain(value)
        raise spec_error("list_type", "must be a list, got {value!r}", {"value": to_plain(value)})

    @model_validator(mode="after")
    def _normalise(self) -> Parameter:
        """Apply valohai-yaml's Parameter.__init__ normalisation, and YAML 1.1 number strings."""
        multiple = None if self.multiple in (None, "none") else self.multiple
        updates: dict[str, Any] = {
            "multiple": multiple,
            "choices": self.choices or None,
            "category": str(self.category) if self.category else None,
            "multiple_separator": self.multiple_separator or ",",
        }
        default = self.default
        if multiple:
            default = [] if default is None else list(default) if isinstance(default, list) else [default]
        if self.type in ("integer", "float"):
            default = _coerce_number_strings(self.type, default)
        updates["default"] = default
        if self.type == "flag":
            if multiple:
                raise spec_error("flag_multiple", "flag parameters can't be multiple", {})
            updates["optional"] = True
            updates["choices"] = [True, False]
        else:
            updates["pass_true_as"] = None
            updates["pass_false_as"] = None
        for key, value in updates.items():
            object.__setattr__(self, key, value)
        return self

    @property
    def required(self) -> bool:
        """Valohai's definition: no default and not optional."""
        return self.default is None and not self.optional


def _coerce_number_strings(type_: str, default: Any) -> Any:
    """``1e-4`` is a string to YAML 1.1; turn such strings into the number the author meant."""
    if isinstance(default, list):
        return [_coerce_number_string(type_, atom) for atom in default]
    return _coerce_number_string(type_, default)


def _coerce_number_string(type_: str, atom: Any) -> Any:
    if not isinstance(atom, str):
        return atom
    try:
        return int(atom, 10) if type_ == "integer" else float(atom)
    except ValueError:
        return atom


def _validate_type(param: Parameter, value: Any, errors: list[str]) -> Any:
    if param.type == "integer":
        try:
            return int(str(value), 10)
        except ValueError:
            errors.append("No value supplied" if value == "" else f"{value} is not an integer")
    elif param.type == "float":
        try:
            return float(str(value))
        except ValueError:
            errors.append("No value supplied" if value == "" else f"{value} is not a floating-point number")
    return value


def _validate_value(param: Parameter, value: Any, errors: list[str]) -> None:
    try:
        if param.min is not None and value < param.min:
            errors.append(f"{value} is less than the minimum allowed ({param.min})")
    except TypeError:
        pass
    try:
        if param.max is not None and value > param.max:
            errors.append(f"{value} is greater than the maximum allowed ({param.max})")
    except TypeError:
        pass
    if param.choices is not None and value not in param.choices:
        errors.append(f"{value} is not among the choices allowed ({param.choices!r})")


def coerce_parameter_value(param: Parameter, value: Any) -> Any:
    """Type-cast and check a value like valohai-yaml's ``Parameter.validate``; raise ParameterValueError."""
    errors: list[str] = []
    if not param.multiple and isinstance(value, list | tuple):
        errors.append("Only a single value is allowed")
    if value is None:
        errors.append("No value supplied")
    atoms = [] if value is None else list(value) if isinstance(value, list | tuple) else [value]
    validated = []
    for atom in atoms:
        if isinstance(atom, list | tuple | dict):
            errors.append(f"nested value {atom!r} is not allowed")
            continue
        atom = _validate_type(param, atom, errors)
        _validate_value(param, atom, errors)
        validated.append(atom)
    if errors:
        raise ParameterValueError(param.name, value, errors)
    return validated if param.multiple else validated[0]
