"""Task blueprints → the parameter sets of a task node's executions, and their compile-time checks."""

from __future__ import annotations

import textwrap
import time

import pytest

from tests.unit.plan.support import compile_text, plan_errors
from valohai_airflow.plan.blueprints import (
    MAX_VARIANTS,
    VariantError,
    expand_blueprint,
    label,
    variant_count,
    varied_parameters,
)
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.spec.task import Task

STEP = """\
- step:
    name: train
    image: busybox
    command: train {parameters}
    parameters:
      - {name: epochs, type: integer, default: 5}
      - {name: lr, type: float, default: 0.1}
      - {name: optimizer, type: string, default: adam}
"""


def blueprint(body: str) -> str:
    return (
        STEP
        + "- task:\n    name: sweep\n    step: train\n"
        + "".join(f"    {line}\n" for line in textwrap.dedent(body).strip("\n").splitlines())
        + "- pipeline:\n    name: p\n    nodes:\n      - {name: t, type: task, task: sweep}\n    edges: []\n"
    )


def node(body: str) -> NodePlan:
    (pipeline,) = compile_text(blueprint(body)).pipelines
    return pipeline.node("t")


def task_of(body: str) -> Task:
    found = node(body).blueprint
    assert found is not None
    return found


def test_grid_of_every_style_in_listed_order() -> None:
    task = task_of(
        """
        parameters:
          - {name: epochs, style: linear, rules: {start: 1, end: 3, step: 1}}
          - {name: lr, style: logspace, rules: {start: -3, end: -1, count: 3}}
          - {name: optimizer, style: multiple, rules: {items: [adam, sgd]}}
        """
    )
    variants = expand_blueprint(task)
    assert len(variants) == variant_count(task) == 18
    assert variants[:3] == [
        {"epochs": 1, "lr": 0.001, "optimizer": "adam"},
        {"epochs": 1, "lr": 0.001, "optimizer": "sgd"},
        {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
    ]
    assert variants[-1] == {"epochs": 3, "lr": 0.1, "optimizer": "sgd"}
    assert label(variants[0]) == "epochs=1, lr=0.001, optimizer=adam"


def test_linear_floats_include_the_end_and_have_no_float_noise() -> None:
    task = task_of("parameters:\n  - {name: lr, style: linear, rules: {start: 0.1, end: 0.5, step: 0.1}}")
    assert [v["lr"] for v in expand_blueprint(task)] == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_logspace_base_and_integerify() -> None:
    task = task_of(
        "parameters:\n  - {name: epochs, style: logspace, rules: {start: 1, end: 4, count: 4, base: 2, integerify: true}}"
    )
    assert [v["epochs"] for v in expand_blueprint(task)] == [2, 4, 8, 16]


def test_random_with_a_seed_repeats_and_stays_in_range() -> None:
    body = "parameters:\n  - {name: lr, style: random, rules: {min: 0.5, max: 0.75, count: 20, seed: 3}}"
    first, again = expand_blueprint(task_of(body)), expand_blueprint(task_of(body))
    assert first == again
    values = [v["lr"] for v in first]
    assert len(set(values)) == 20 and all(0.5 <= x <= 0.75 for x in values)
    other = expand_blueprint(task_of(body.replace("seed: 3", "seed: 4")))
    assert other != first


def test_manual_search_uses_parameter_sets_and_they_leave_the_form() -> None:
    task = task_of(
        """
        type: manual_search
        parameter-sets:
          - {epochs: 3, lr: 0.5}
          - {epochs: 8}
        """
    )
    assert expand_blueprint(task) == [{"epochs": 3, "lr": 0.5}, {"epochs": 8}]
    assert varied_parameters(task) == {"epochs", "lr"}


def test_random_search_draws_execution_count_combinations() -> None:
    task = task_of(
        """
        type: random_search
        execution-count: 7
        parameters:
          - {name: epochs, style: multiple, rules: {items: [1, 2, 3]}}
          - {name: lr, style: random, rules: {min: 0, max: 1, count: 50, seed: 1}}
        """
    )
    variants = expand_blueprint(task)
    assert len(variants) == 7 and all(v["epochs"] in (1, 2, 3) and 0 <= v["lr"] <= 1 for v in variants)
    assert variants == expand_blueprint(task)  # the seed makes the draw repeatable


def test_ten_million_variants_are_refused_at_compile_time_without_being_made() -> None:
    started = time.perf_counter()
    (error,) = plan_errors(
        blueprint(
            """
            parameters:
              - {name: epochs, style: linear, rules: {start: 1, end: 10000, step: 1}}
              - {name: lr, style: linear, rules: {start: 1, end: 1000, step: 1}}
            """
        )
    )
    assert time.perf_counter() - started < 5  # counted, not expanded (10,000,000 dicts would take long)
    assert 'task "sweep" would run 10,000,000 executions' in error.message
    assert f"at most {MAX_VARIANTS:,}" in error.message
    assert (error.location.line, error.location.column) == (10, 5)  # the `- task:` item's mapping


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("{name: epochs, style: multiple, rules: {items: []}}", "has no `items`"),
        ("{name: epochs, style: linear, rules: {start: 1, end: 5, step: -1}}", "never gets from 1 to 5"),
        ("{name: epochs, style: linear, rules: {start: 1, end: 5}}", "needs rules `step`"),
        (
            "{name: lr, style: logspace, rules: {start: 1, end: 2, count: 0}}",
            "`count` must be a whole number",
        ),
        ("{name: lr, style: random, rules: {min: 2, max: 1, count: 3}}", "`min` 2 is above `max` 1"),
        (
            "{name: lr, style: random, rules: {min: 1, max: 2, count: 3, distribution: normal}}",
            'distribution "normal" is not supported',
        ),
    ],
)
def test_rules_that_give_no_values_name_the_parameter_and_its_line(rule: str, expected: str) -> None:
    (error,) = plan_errors(blueprint(f"parameters:\n  - {rule}"))
    assert expected in error.message, error.message
    assert error.message.startswith('pipeline "p": node "t": variant parameter')
    assert error.location.line == 13  # the variant parameter's own line


def test_a_blueprint_that_varies_nothing_is_a_compile_error() -> None:
    (error,) = plan_errors(blueprint("parameters: []"))
    assert 'task "sweep" varies no parameter, so it has no variants' in error.message
    assert error.location.line == 10


def test_a_value_the_parameter_refuses_is_a_compile_error() -> None:
    (error,) = plan_errors(
        blueprint("parameters:\n  - {name: epochs, style: multiple, rules: {items: [1, 2.5, many]}}")
    )
    assert 'task blueprint "sweep" gives parameter "epochs" the value 2.5' in error.message
    assert error.location.line == 13


def test_on_child_error_is_the_node_on_error_unless_the_node_sets_one() -> None:
    sweep = "on-child-error: continue-and-complete\nparameters:\n  - {name: epochs, style: single, rules: {value: 1}}"
    assert node(sweep).on_error == "continue"
    assert node(sweep.replace("continue-and-complete", "continue-and-error")).on_error == "stop-next"
    text = blueprint(sweep).replace("task: sweep}", "task: sweep, on-error: stop-all}")
    (pipeline,) = compile_text(text).pipelines
    assert pipeline.node("t").on_error == "stop-all"


def test_parameter_sets_outside_manual_search_warn() -> None:
    text = blueprint(
        "parameters:\n  - {name: epochs, style: single, rules: {value: 1}}\nparameter-sets:\n  - {epochs: 2}"
    )
    (warning,) = compile_text(text).diagnostics
    assert "is grid_search, so its parameter-sets are not used" in warning.message


def test_count_without_execution_count_is_the_grid() -> None:
    task = task_of(
        "type: random_search\nparameters:\n  - {name: epochs, style: multiple, rules: {items: [1, 2]}}"
    )
    assert variant_count(task) == 2


def test_variant_error_carries_a_location() -> None:
    task = task_of("parameters:\n  - {name: epochs, style: single, rules: {value: 1}}")
    broken = task.model_copy(update={"execution_count": 0, "type": "distributed"})
    with pytest.raises(VariantError, match="execution-count 0 runs nothing") as caught:
        expand_blueprint(broken)
    assert caught.value.location.line == task.location.line
