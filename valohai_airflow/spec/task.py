"""Task blueprints (``- task:`` items): reusable parameter sweeps for task nodes."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from valohai_airflow.spec._base import Bool, Int, Number, SpecModel, Str, spec_error, to_plain
from valohai_airflow.spec.step import StopCondition

TaskType = Literal["grid_search", "random_search", "bayesian_tpe", "manual_search", "distributed"]
OnChildError = Literal["continue-and-complete", "continue-and-error", "stop-all-and-error"]
VariantStyle = Literal["linear", "logspace", "multiple", "random", "single"]


def _task_type(value: Any) -> Any:
    """valohai-yaml's TaskType.cast: empty → grid_search, case-insensitive, '-' means '_'."""
    if not value:
        return "grid_search"
    return value.lower().replace("-", "_") if isinstance(value, str) else value


def _on_child_error(value: Any) -> Any:
    if not value:
        return None
    return value.lower().replace("_", "-") if isinstance(value, str) else value


class VariantParameterRules(SpecModel):
    """How a variant parameter's values are generated; which keys matter depends on the style."""

    kind: ClassVar[str] = "rules"

    base: Number | None = None
    count: Number | None = None
    distribution: Str | None = None
    end: Number | None = None
    integerify: Bool | None = None
    items: tuple[Any, ...] | None = None
    max: Number | None = None
    min: Number | None = None
    numberify: Bool | None = None
    seed: Number | None = None
    start: Number | None = None
    step: Number | None = None
    value: Number | None = None

    @field_validator("items", mode="before")
    @classmethod
    def _items(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, list | tuple) and all(isinstance(v, str | int | float | bool) for v in value):
            return tuple(value)
        raise spec_error(
            "items",
            "must be a list of numbers, strings or booleans, got {value!r}",
            {"value": to_plain(value)},
        )

    def as_dict(self) -> dict[str, Any]:
        """The rules as Valohai's API expects them (only the keys that were set)."""
        data = self.model_dump(exclude_none=True, exclude={"location"})
        if "items" in data:
            data["items"] = list(data["items"])
        return data


class VariantParameter(SpecModel):
    """One swept parameter of a task blueprint."""

    kind: ClassVar[str] = "variant parameter"

    name: Str
    style: Annotated[VariantStyle, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]
    rules: VariantParameterRules


class Task(SpecModel):
    """One ``- task:`` item."""

    kind: ClassVar[str] = "task"

    name: Str
    step: Str
    type: Annotated[TaskType, BeforeValidator(_task_type)] = "grid_search"
    parameters: tuple[VariantParameter, ...] = ()
    parameter_sets: tuple[dict[str, Any], ...] = Field(default=(), alias="parameter-sets")
    description: Str | None = None
    execution_count: Int | None = Field(default=None, alias="execution-count")
    execution_batch_size: Int | None = Field(default=None, alias="execution-batch-size")
    maximum_queued_executions: Int | None = Field(default=None, alias="maximum-queued-executions")
    optimization_target_metric: Str | None = Field(default=None, alias="optimization-target-metric")
    optimization_target_value: Number | None = Field(default=None, alias="optimization-target-value")
    engine: Str | None = None
    on_child_error: Annotated[OnChildError | None, BeforeValidator(_on_child_error)] = Field(
        default=None, alias="on-child-error"
    )
    stop_condition: StopCondition = Field(default=None, alias="stop-condition")
    reuse_children: Bool = Field(default=False, alias="reuse-children")

    @field_validator("parameter_sets", mode="before")
    @classmethod
    def _parameter_sets(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and all(isinstance(v, dict) for v in value):
            return tuple(to_plain(v) for v in value if v)
        raise spec_error(
            "parameter_sets", "must be a list of mappings, got {value!r}", {"value": to_plain(value)}
        )

    @model_validator(mode="before")
    @classmethod
    def _parameters_or_sets(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "parameters" not in data
            and "parameter-sets" not in data
            and "parameter_sets" not in data
        ):
            raise spec_error("task", "a task needs 'parameters' or 'parameter-sets'", {})
        return data
