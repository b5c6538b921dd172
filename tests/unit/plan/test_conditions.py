"""Action conditions: parsing, evaluation, and the compile-time checks on them."""

from __future__ import annotations

import pytest

from tests.unit.plan.support import compile_text, plan_errors
from tests.unit.plan.test_checks import pipeline
from valohai_airflow.plan.conditions import Condition, ConditionSyntaxError, parse_condition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.accuracy < .8", Condition("metadata", "accuracy", "<", 0.8)),
        ("metadata.drift <= 1", Condition("metadata", "drift", "<=", 1)),
        ("parameter.mode == 'fast'", Condition("parameter", "mode", "==", "fast")),
        ('parameter.mode != "a b"', Condition("parameter", "mode", "!=", "a b")),
        ("metadata.done==True", Condition("metadata", "done", "==", True)),
        ("metadata.stage >= warmup", Condition("metadata", "stage", ">=", "warmup")),
        ("metadata.loss.val > 1e-3", Condition("metadata", "loss.val", ">", 0.001)),
    ],
)
def test_parse(text: str, expected: Condition) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize("text", ["a", "metadata.x", "metadata.x <> 1", "accuracy < 1", "metadata. < 1"])
def test_unreadable(text: str) -> None:
    with pytest.raises(ConditionSyntaxError, match="cannot read condition"):
        parse_condition(text)


def test_holds() -> None:
    metadata = {"accuracy": 0.75, "done": "true", "stage": "eval", "count": "12"}
    assert parse_condition("metadata.accuracy < .8").holds(metadata, {})
    assert not parse_condition("metadata.accuracy >= .8").holds(metadata, {})
    assert parse_condition("metadata.done == true").holds(metadata, {})
    assert parse_condition("metadata.stage == eval").holds(metadata, {})
    assert parse_condition("metadata.count > 10").holds(metadata, {})  # numeric string compared as number
    assert parse_condition("parameter.epochs == 3").holds({}, {"epochs": 3})
    # missing or incomparable values never fire an action
    assert not parse_condition("metadata.missing < 1").holds(metadata, {})
    assert not parse_condition("metadata.stage < 1").holds(metadata, {})
    assert not parse_condition("metadata.accuracy != 1").holds({"accuracy": float("nan")}, {})


def test_compile_checks_conditions() -> None:
    base = """
        - name: b
          type: execution
          step: train
          actions:
            - when: node-complete
              if: {condition}
              then: stop-pipeline
        """
    plan = compile_text(pipeline(base.format(condition="metadata.loss < 0.1")))
    assert plan.diagnostics == ()
    warned = compile_text(pipeline(base.format(condition="loss is low")))
    (warning,) = warned.diagnostics
    assert warning.message.startswith('pipeline "p": node "b": action condition: cannot read condition')
    assert warning.message.endswith("; it never holds")
    (error,) = plan_errors(pipeline(base.format(condition='"parameter.epoch > 3"')))
    assert error.message == (
        'pipeline "p": node "b": action condition "parameter.epoch > 3": step "train" has no parameter "epoch"'
    )
    assert error.hint == 'did you mean "epochs"?'
    assert error.location.line > 0
