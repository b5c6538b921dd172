"""Node action conditions (`if: metadata.accuracy < 0.8`): parsed once at compile time so a typo is
reported with its line, and evaluated the same way wherever an action is checked.

Valohai documents `metadata.<key>` and `parameter.<name>` on the left, the operators
`> >= < <= == !=`, and numbers, strings or booleans on the right (docs: pipelines/dynamic-conditions).
A list of conditions means all of them (an assumption; the list form is not documented).

A key the node never printed (or a parameter it does not have) makes the condition not hold, and the
evaluation says the key is missing: Valohai's evaluator is closed, and leval's boolean evaluator
(probably the platform's) raises `NoSuchValue` there, so an action never fires on data that is not
there (docs/mapping.md, "on-error and actions").
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from valohai_airflow.errors import ValohaiAirflowError

_CONDITION = re.compile(
    r"^\s*(?P<source>metadata|parameter)\.(?P<key>[^\s<>=!]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>[^\s<>=!].*?)\s*$"
)
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
FORM = '"metadata.<key> <op> <value>" or "parameter.<name> <op> <value>" with <op> one of > >= < <= == !='


class ConditionSyntaxError(ValohaiAirflowError):
    """A condition this project cannot evaluate."""


@dataclass(frozen=True, slots=True)
class Condition:
    source: Literal["metadata", "parameter"]
    key: str
    op: str
    value: str | int | float | bool

    def holds(self, metadata: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
        """False when the left side is missing or cannot be compared (e.g. a string against a number):
        an action must not fire on data that is not there."""
        return self.evaluate(metadata, parameters).holds

    def evaluate(self, metadata: Mapping[str, Any], parameters: Mapping[str, Any]) -> Evaluation:
        """Whether it holds, with the value seen (or that the key is missing) for the task log."""
        values = metadata if self.source == "metadata" else parameters
        name = f"{self.source}.{self.key}"
        if self.key not in values:
            never = (
                "the step never printed it" if self.source == "metadata" else "the node has no such parameter"
            )
            return Evaluation(False, f"{name} is missing ({never}), so `{self}` does not hold", missing=True)
        seen = values[self.key]
        left = _comparable(seen, self.value)
        holds = False
        if left is not None:
            try:
                holds = _OPERATORS[self.op](left, self.value)
            except TypeError:
                left = None
        if left is None:
            return Evaluation(
                False,
                f"{name} is {seen!r}, which cannot be compared with {self.value!r}, so `{self}` does not hold",
            )
        return Evaluation(holds, f"{name} is {seen!r}, so `{self}` {'holds' if holds else 'does not hold'}")

    def __str__(self) -> str:
        return f"{self.source}.{self.key} {self.op} {self.value!r}"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One condition checked against a node's values: the result and what was seen."""

    holds: bool
    detail: str
    missing: bool = False


def parse_condition(text: str) -> Condition:
    match = _CONDITION.match(text)
    if match is None:
        raise ConditionSyntaxError(f"cannot read condition {text!r}", hint=f"write {FORM}")
    source: Literal["metadata", "parameter"] = "metadata" if match["source"] == "metadata" else "parameter"
    return Condition(source, match["key"], match["op"], _literal(match["value"]))


def _literal(text: str) -> str | int | float | bool:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _comparable(value: Any, like: str | int | float | bool) -> Any:
    """`value` in the type of the literal it is compared with, or None if it has no such form."""
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return None
    if isinstance(like, int | float):
        if isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(number) else number
    return value if isinstance(value, str) else str(value)
