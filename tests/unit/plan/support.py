"""Compile YAML text the way compile_project does, without a file on disk."""

from __future__ import annotations

import hashlib
import textwrap

from valohai_airflow.plan.compile import compile_config
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.spec.diagnostics import Diagnostic, ValohaiSpecError
from valohai_airflow.spec.parse import parse_text

FILE = "valohai.yaml"


def compile_text(text: str) -> ProjectPlan:
    """Parse (must succeed) and compile `text`; raises ValohaiSpecError on plan errors."""
    text = textwrap.dedent(text)
    result = parse_text(text, FILE)
    assert result.config is not None, [str(d) for d in result.diagnostics.items]
    assert not result.diagnostics.errors, [str(d) for d in result.diagnostics.errors]
    return compile_config(
        result.config,
        project_name="proj",
        root="/proj",
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def plan_errors(text: str) -> list[Diagnostic]:
    """The plan errors of `text` (which must parse cleanly); fails if it compiles."""
    try:
        compile_text(text)
    except ValohaiSpecError as exc:
        return exc.diagnostics
    raise AssertionError("expected the plan to be rejected")


def messages(diagnostics: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics]
