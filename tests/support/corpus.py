"""The files that compile, as the Airflow-side corpus tests walk them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import cases
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.spec.diagnostics import ValohaiSpecError


def compiled(paths: Iterable[Path]) -> Iterator[tuple[Path, ProjectPlan]]:
    """(file, plan) for every file that compiles, in the order given; the others are left out."""
    for path in paths:
        try:
            yield path, compile_project(path)
        except ValohaiSpecError:
            continue


def edges_that_act(converted: dict[str, Any]) -> list[dict[str, Any]]:
    """The edges of valohai-yaml's converted pipeline that do something: one from a socket to itself
    (Valohai's own Three-Trainings example has one) is dropped with a warning by plan/edges.py."""
    return [
        e
        for e in converted["edges"]
        if any(e[f"source_{part}"] != e[f"target_{part}"] for part in ("node", "type", "key"))
    ]


# The two groups the Airflow-side corpus tests walk: what every clone has (the shape fixtures and
# valohai-yaml's sdist files), and the optional corpus (one skip, with its reason, when absent).
FIXTURES = "fixtures"
GROUPS = [
    pytest.param(FIXTURES, id="shapes+valohai-yaml"),
    pytest.param(
        cases.CORPUS,
        id="corpus",
        marks=() if cases.HAVE_CORPUS else pytest.mark.skip(reason=cases.CORPUS_SKIP),
    ),
]


def group_paths(files: cases.Files, group: str) -> list[Path]:
    """Every file of the group, in name order within each source."""
    if group == FIXTURES:
        return [files.path(c) for c in cases.shapes() + cases.upstream()]
    return [files.path(c) for c in cases.corpus()]
