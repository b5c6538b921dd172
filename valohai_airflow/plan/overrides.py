"""A node's effective step: the step with the node's `override` merged in, the way Valohai does it.

Valohai (valohai-yaml `Override.merge_with_step` + `serialize_to_template`) merges parameters, inputs
and environment variables BY NAME, and the override item replaces the step item; the platform then
receives only `{name: override.default}`. Two consequences we keep exactly:

- an override item without `default` CLEARS the value (parameter/env var → None, input → no files);
- `image`, `command`, `mounts`, `environment`, `runtime-config-preset` and `autorestart` replace the
  step's when given.

The fields an override item spells out (`type`, `description`, `pass-as`, ...) replace the step's;
fields it does not write keep the step's, because the platform runs the step's definition with the
override's value, so e.g. `{name: epochs, default: 3}` stays an integer parameter with its min/max.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from valohai_airflow.spec.diagnostics import Location
from valohai_airflow.spec.input import Input
from valohai_airflow.spec.parameter import Parameter
from valohai_airflow.spec.pipeline import Override
from valohai_airflow.spec.step import EnvironmentVariable, Step

_Item = TypeVar("_Item", Parameter, Input, EnvironmentVariable)

# What an override item without `default` leaves: Valohai sends `None` (inputs: an empty list).
_CLEARED_PARAMETER: dict[str, Any] = {"default": None}
_CLEARED_INPUT: dict[str, Any] = {"default": ()}

# Told about an override item that does not make a valid item together with the step's one.
Complaint = Callable[[str, Location], None]


def effective_step(step: Step, override: Override | None, complain: Complaint) -> Step:
    """`step` with `override` merged; the step itself when there is nothing to merge."""
    if override is None:
        return step
    update: dict[str, Any] = {}
    if override.image:
        update["image"] = override.image
    if override.command:
        update["command"] = override.command
    if override.parameters:
        update["parameters"] = _merge_by_name(
            step.parameters, override.parameters, _CLEARED_PARAMETER, complain
        )
    if override.inputs:
        update["inputs"] = _merge_by_name(step.inputs, override.inputs, _CLEARED_INPUT, complain)
    if override.environment_variables:
        update["environment_variables"] = _merge_by_name(
            step.environment_variables, override.environment_variables, _CLEARED_PARAMETER, complain
        )
    if override.mounts:
        update["mounts"] = override.mounts
    if override.environment:
        update["environment"] = override.environment
        update["environment_location"] = override.environment_location
    if override.runtime_config_preset:
        update["runtime_config_preset"] = override.runtime_config_preset
    if override.autorestart is not None:
        update["autorestart"] = override.autorestart
    if not update:
        return step
    return step.model_copy(update=update)


def _merge_by_name(
    items: Sequence[_Item], overrides: Sequence[_Item], cleared: dict[str, Any], complain: Complaint
) -> tuple[_Item, ...]:
    """Step items in step order, each replaced by its override; override items the step does not have
    are left out (the compiler reports them as errors).

    The merged item is validated again (not just copied) so the spec's normalisation holds for the
    combination, e.g. a flag's choices or a `multiple` parameter's list default.
    """
    by_name = {getattr(o, "name"): o for o in overrides}  # noqa: B009 - the item types share `name`
    merged: list[_Item] = []
    for item in items:
        override = by_name.get(item.name)
        if override is None:
            merged.append(item)
            continue
        data = item.model_dump()
        data.update(cleared)
        data.update(
            {field: getattr(override, field) for field in override.model_fields_set if field != "location"}
        )
        data["location"] = override.location
        try:
            merged.append(type(item).model_validate(data))
        except ValidationError as exc:
            problems = "; ".join(str(error["msg"]) for error in exc.errors())
            complain(
                f'{item.kind} "{item.name}" does not merge with the step\'s: {problems}',
                override.location,
            )
            merged.append(item)
    return tuple(merged)
