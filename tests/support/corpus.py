"""The corpus files that compile, as the Airflow-side tests walk them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.plan.project import compile_project
from valohai_airflow.spec.diagnostics import ValohaiSpecError


def compiled_corpus(corpus_dir: Path) -> Iterator[tuple[Path, ProjectPlan]]:
    """(file, plan) for every corpus file that compiles, in name order; the others are skipped."""
    for path in sorted(corpus_dir.glob("*.yaml")):
        try:
            yield path, compile_project(path)
        except ValohaiSpecError:
            continue
