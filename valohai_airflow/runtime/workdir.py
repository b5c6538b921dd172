"""A fresh work dir per (dag, run, node, map index, try), bind-mounted as `/valohai`.

Layout: `repository/` (a copy of the project folder, so a step writing into its working dir
cannot touch the dags folder or another try), `inputs/`, `outputs/`, `config/`. A retry gets its
own dir (the try number is part of the path); re-creating the same try starts from empty.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from valohai_airflow.runtime.config_files import CONTAINER_ROOT
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.repository import RepositoryRules


@dataclass(frozen=True, slots=True)
class WorkDir:
    root: Path
    excluded: tuple[str, ...] = ()  # what the project's .vhignore kept out of repository/

    @property
    def repository(self) -> Path:
        return self.root / "repository"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def config(self) -> Path:
        return self.root / "config"


def create_workdir(
    base: Path,
    key: ExecutionKey,
    project_dir: Path | None,
) -> WorkDir:
    """Make `<base>/<dag>/<run>/<node>/<map>/<try>/` with the four subdirectories.

    The repository copy is the project's files as `runtime.repository` selects them (`.vhignore`
    honoured) and keeps symlinks as links (never copies what they point at)."""
    root = Path(base) / key.prefix
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    work = WorkDir(root)
    if project_dir is not None:
        work = WorkDir(root, tuple(RepositoryRules.load(project_dir).copy(work.repository)))
    else:
        work.repository.mkdir()
    for sub in (work.inputs, work.outputs, work.config):
        sub.mkdir()
    work.outputs.chmod(0o777)  # the container user may not be the worker user
    return work


def valohai_environment(
    key: ExecutionKey,
    *,
    container_root: str = CONTAINER_ROOT,
    project_id: str | None = None,
    pipeline_id: str | None = None,
    pipeline_node_id: str | None = None,
) -> dict[str, str]:
    """The `VH_*` variables a step sees on Valohai (VALOHAI.md §4.2)."""
    env = {
        "VH_CONFIG_DIR": f"{container_root}/config",
        "VH_INPUTS_DIR": f"{container_root}/inputs",
        "VH_OUTPUTS_DIR": f"{container_root}/outputs",
        "VH_REPOSITORY_DIR": f"{container_root}/repository",
        "VH_EXECUTION_ID": key.execution_id,
        "VH_JOB_ID": key.job_id,
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (
        ("VH_PROJECT_ID", project_id),
        ("VH_PIPELINE_ID", pipeline_id),
        ("VH_PIPELINE_NODE_ID", pipeline_node_id),
    ):
        if value:
            env[name] = value
    return env
