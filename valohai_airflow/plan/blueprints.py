"""Task blueprints → the parameter sets of a task node's executions (one Airflow map index each).

Valohai leaves the maths to its platform; we choose, and docs/mapping.md (Task nodes) says so:
- `single`: `value`; `multiple`: `items`; `linear`: `start`, `start + step`, … up to and including
  `end`; `logspace`: `count` values `base ** x` for x evenly spaced from `start` to `end` (numpy's
  logspace); `random`: `count` values drawn uniformly between `min` and `max` (Python's `random`
  seeded by `seed`, fresh each run without one). `integerify` rounds to whole numbers.
- `grid_search` (and `manual_search` without `parameter-sets`): every combination, in the order the
  parameters are listed, the last one varying fastest. `manual_search`: its `parameter-sets`.
  `random_search` and `bayesian_tpe`: `execution-count` executions, each picking every parameter's
  value at random from its values; Bayesian optimisation needs
  Valohai's optimiser, so it is explored at random here. `distributed`: `execution-count` copies of
  the first combination.
A task node has at most MAX_VARIANTS executions (Airflow's default `[core] max_map_length`).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.diagnostics import Location
from valohai_airflow.spec.task import Task, VariantParameter

MAX_VARIANTS = 1024
_RANDOM_TYPES = ("random_search", "bayesian_tpe")

Variant = dict[str, Any]


class VariantError(ValohaiAirflowError):
    """A task node that cannot give executions: its blueprint's rules give none or too many (`location`
    says where), or a value that arrives at run time cannot be spread over it."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message, location=location)


def _need(parameter: VariantParameter, *keys: str) -> list[float]:
    values = [getattr(parameter.rules, key) for key in keys]
    missing = [key for key, value in zip(keys, values, strict=True) if value is None]
    if missing:
        raise VariantError(
            f'variant parameter "{parameter.name}" (style {parameter.style}) needs rules '
            + ", ".join(f"`{key}`" for key in missing),
            parameter.location,
        )
    return [float(v) for v in values]


def _count(parameter: VariantParameter) -> int:
    """How many values a parameter has, without making them (a million-value rule stays cheap)."""
    style = parameter.style
    if style == "single":
        _need(parameter, "value")
        return 1
    if style == "multiple":
        if not parameter.rules.items:
            raise VariantError(
                f'variant parameter "{parameter.name}" (style multiple) has no `items`', parameter.location
            )
        return len(parameter.rules.items)
    if style == "linear":
        start, end, step = _need(parameter, "start", "end", "step")
        if step == 0 or (end - start) * step < 0:
            raise VariantError(
                f'variant parameter "{parameter.name}" (style linear): step {step:g} never gets from '
                f"{start:g} to {end:g}",
                parameter.location,
            )
        return math.floor((end - start) / step + 1e-9) + 1
    (count,) = _need(parameter, "count")
    if count < 1 or count != int(count):
        raise VariantError(
            f'variant parameter "{parameter.name}" (style {style}): `count` must be a whole number of at '
            f"least 1, not {count:g}",
            parameter.location,
        )
    if style == "random":
        low, high = _need(parameter, "min", "max")
        if low > high:
            raise VariantError(
                f'variant parameter "{parameter.name}" (style random): `min` {low:g} is above `max` {high:g}',
                parameter.location,
            )
        distribution = parameter.rules.distribution or "uniform"
        if distribution != "uniform":
            raise VariantError(
                f'variant parameter "{parameter.name}": distribution "{distribution}" is not supported; '
                "valohai-airflow draws `uniform` values",
                parameter.location,
            )
    return int(count)


def _shape(value: float, whole: bool | None) -> float | int:
    """A whole number when asked (`integerify`, or a linear range of whole numbers), else a float
    without the noise of repeated float steps (0.30000000000000004)."""
    return round(value) if whole else round(value, 12)


def _values(parameter: VariantParameter, rng: random.Random) -> list[Any]:
    rules, count = parameter.rules, _count(parameter)
    if parameter.style == "single":
        return [rules.value]
    if parameter.style == "multiple":
        return list(rules.items or ())
    if parameter.style == "linear":
        start, _, step = _need(parameter, "start", "end", "step")
        whole = rules.integerify or all(isinstance(v, int) for v in (rules.start, rules.step))
        return [_shape(start + i * step, whole) for i in range(count)]
    if parameter.style == "logspace":
        start, end = _need(parameter, "start", "end")
        base = float(rules.base if rules.base is not None else 10)
        exponents = [start + (end - start) * i / (count - 1) for i in range(count)] if count > 1 else [start]
        return [_shape(base**x, rules.integerify) for x in exponents]
    low, high = _need(parameter, "min", "max")
    return [_shape(rng.uniform(low, high), rules.integerify) for _ in range(count)]


def varied_parameters(task: Task | None) -> set[str]:
    """The parameters a blueprint decides (the trigger form does not offer them)."""
    if task is None:
        return set()
    if task.type == "manual_search" and task.parameter_sets:
        return {name for parameter_set in task.parameter_sets for name in parameter_set}
    return {p.name for p in task.parameters}


def variant_count(task: Task) -> int:
    """The number of executions `task` gives; raises VariantError for rules that give none."""
    if task.type == "manual_search" and task.parameter_sets:
        return len(task.parameter_sets)
    if task.type in (*_RANDOM_TYPES, "distributed") and task.execution_count is not None:
        if task.execution_count < 1:
            raise VariantError(
                f'task "{task.name}": execution-count {task.execution_count} runs nothing', task.location
            )
        for parameter in task.parameters:
            _count(parameter)
        return task.execution_count
    return math.prod(_count(p) for p in task.parameters)


def check_blueprint(task: Task) -> int:
    """Compile-time check: the count, or VariantError when it is none or above MAX_VARIANTS."""
    if not task.parameters and not task.parameter_sets and task.type != "distributed":
        raise VariantError(
            f'task "{task.name}" varies no parameter, so it has no variants: give it `parameters` '
            "(or `parameter-sets` for manual_search)",
            task.location,
        )
    count = variant_count(task)
    if count > MAX_VARIANTS:
        raise VariantError(
            f'task "{task.name}" would run {count:,} executions; a task node runs at most {MAX_VARIANTS:,} '
            "(Airflow's default [core] max_map_length): narrow its ranges or split the sweep",
            task.location,
        )
    return count


def expand_blueprint(task: Task, seed: int | None = None) -> list[Variant]:
    """The parameter sets of `task`'s executions, in a stable order. `seed` is used where the
    blueprint's random rules give none."""
    check_blueprint(task)
    seeds = [p.rules.seed for p in task.parameters if p.rules.seed is not None]
    rng = random.Random(int(seeds[0]) if seeds else seed)
    if task.type == "manual_search" and task.parameter_sets:
        return [dict(s) for s in task.parameter_sets]
    names = [p.name for p in task.parameters]
    values = [_values(p, rng) for p in task.parameters]
    if task.type == "distributed" and task.execution_count is not None:
        first = {name: options[0] for name, options in zip(names, values, strict=True)}
        return [dict(first) for _ in range(task.execution_count)]
    if task.type in _RANDOM_TYPES and task.execution_count is not None:
        return [
            {name: rng.choice(options) for name, options in zip(names, values, strict=True)}
            for _ in range(task.execution_count)
        ]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]


def combine(variants: Sequence[Mapping[str, Any]], name: str, values: Sequence[Any]) -> Iterator[Variant]:
    """Every variant with every value of a spread parameter (a list into a task node)."""
    for variant in variants:
        for value in values:
            yield {**variant, name: value}


def label(variant: Mapping[str, Any]) -> str:
    """A child's name in the Airflow UI (its map index label): the values that make it differ."""
    return ", ".join(f"{name}={value}" for name, value in variant.items()) or "the node's values"
