"""Real Airflow (SQLite metadata DB in a throwaway AIRFLOW_HOME) and the real Docker engine."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DAGS_FOLDER, REPO_ROOT

BUSYBOX = "valohai-airflow/busybox:1"
PYTHON = "valohai-airflow/python:3.11"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


@pytest.fixture(scope="session")
def docker_engine() -> None:
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail("no Docker engine answers: run `make images` (it starts one) and try again")
    for image in (BUSYBOX, PYTHON):
        found = subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False)
        if found.returncode != 0:
            pytest.fail(f"image {image} missing: run `make images`")


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


@pytest.fixture
def dags_folder() -> Iterator[Path]:
    """The configured dags folder, holding the loader file; emptied after each test."""
    _empty(DAGS_FOLDER)
    shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", DAGS_FOLDER / "valohai_dags.py")
    yield DAGS_FOLDER
    _empty(DAGS_FOLDER)


def add_project(
    dags_folder: Path, name: str, valohai_yaml: str | Path, files: dict[str, str] | None = None
) -> Path:
    project = dags_folder / name
    project.mkdir(parents=True)
    text = valohai_yaml.read_text() if isinstance(valohai_yaml, Path) else valohai_yaml
    (project / "valohai.yaml").write_text(text)
    for relative, content in (files or {}).items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return project


def dag_bag(dags_folder: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dags_folder))


def pipeline_dag(bag: Any, project: str) -> Any:
    """The one pipeline DAG of `project` (its steps and task blueprints have DAGs of their own too)."""
    (dag,) = (
        d
        for dag_id, d in bag.dags.items()
        if dag_id.startswith(f"{project}__") and not {"valohai-step", "valohai-task"} & set(d.tags)
    )
    return dag


@pytest.fixture
def host_configs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each container's HostConfig as the engine holds it, read just before the operator removes it."""
    from valohai_airflow.airflow.operators import ValohaiExecutionOperator

    seen: list[dict[str, Any]] = []
    original = ValohaiExecutionOperator._remove_container

    def inspecting(self: ValohaiExecutionOperator, *, want_logs: bool) -> tuple[bool, list[str]]:
        if self.container is not None:
            seen.append(self.cli.inspect_container(self.container["Id"])["HostConfig"])
        return original(self, want_logs=want_logs)

    monkeypatch.setattr(ValohaiExecutionOperator, "_remove_container", inspecting)
    return seen
