"""`stop-condition` of a step (VALOHAI.md §9.8): an expression over the execution's metadata that,
once it holds, stops the execution.

Checked as valohai-yaml checks it (`utils/lint.py`: leval's verifier universe, keywords rewritten,
depth 8), so what upstream rejects is rejected here, with the line. Evaluated with leval's
`CommonBooleanEvaluator` (dashed names, `abs`/`min`/`max`, weak typing of `<`), which is probably the
platform's evaluator (§9.7), over the last value of each metadata key: bare names (`loss < 0.1`, as
Valohai's examples write it) and `metadata.<key>` both read the key. A key never printed makes the
condition not hold (leval raises `NoSuchValue`), as does a value the operators cannot compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leval.excs import NoSuchValue
from leval.extras.common_boolean_evaluator import CommonBooleanEvaluator
from leval.rewriter_evaluator import RewriterEvaluator
from leval.universe.verifier import VerifierUniverse


class _KeywordRewriter(RewriterEvaluator):
    """valohai-yaml's `_KeywordRewriterEvaluator`: Python keywords may be names."""

    def rewrite_keyword(self, kw: str) -> str:
        return f"_{kw}"


def expression_problem(expression: str) -> str | None:
    """Why valohai-yaml's lint rejects `expression` ("is not a valid expression: …"), None if it does not."""
    try:
        _KeywordRewriter(VerifierUniverse(), max_depth=8).evaluate_expression(expression)
    except Exception as error:  # upstream catches everything the same way
        return str(error) or type(error).__name__
    return None


_EVALUATOR = CommonBooleanEvaluator()


def evaluate(expression: str, metadata: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether `expression` holds over the last metadata values, and a sentence for the task log."""
    values: dict[Any, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, bool | int | float | str):
            values[key] = value
            values[("metadata", key)] = value
    try:
        holds = bool(_EVALUATOR.evaluate(expression, values))
    except NoSuchValue as error:
        return False, f"a key it reads was not printed yet ({error})"
    except Exception as error:  # a value leval cannot compare: the condition does not hold
        return False, f"cannot be evaluated on these values ({type(error).__name__}: {error})"
    return holds, "holds" if holds else "does not hold"
