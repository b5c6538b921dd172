"""The files that compile, as the Airflow-side corpus tests walk them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.plan.project import compile_project
from valohai_airflow.spec.diagnostics import ValohaiSpecError


def compiled(paths: Iterable[Path]) -> Iterator[tuple[Path, ProjectPlan]]:
    """(file, plan) for every file that compiles, in the order given; the others are left out."""
    for path in paths:
        try:
            yield path, compile_project(path)
        except ValohaiSpecError:
            continue
