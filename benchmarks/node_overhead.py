"""Per-node overhead: a trivial node (`true` in busybox) through ValohaiExecutionOperator against a
bare DockerOperator running the same container with the same settings.

The subject is the operator the factory builds from a compiled plan, and `execute(context)` is
called with a minimal context (`ti` with run_id, map_index, try_number, xcom_pull; `params`), so
it does everything a real try does: prepare (work dir with a copy of the project, config files),
leftover-container check, the container, finish (collect and upload outputs, metadata, manifest)
and the work dir clean-up. The baseline is `DockerOperator(image, command=["/bin/sh", "-c",
"true"], auto_remove="force", mount_tmp_dir=False, network_mode="none", xcom_all=True,
working_dir="/valohai/repository")`, without the four bind mounts (preparing those is part of
what is measured). Both run in this process, alternating, after one untimed warm-up each.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from benchmarks.common import Row, alternate, quiet

IMAGE = "valohai-airflow/busybox:1"
ROUNDS = 15

YAML = f"""
- step:
    name: noop
    image: {IMAGE}
    command: "true"
- pipeline:
    name: bench
    nodes:
      - {{name: noop, type: execution, step: noop}}
    edges: []
"""


class _TaskInstance:
    """What the operator reads from `ti`: a fresh run id per call, so every try is a new one."""

    _runs = itertools.count()

    def __init__(self) -> None:
        self.run_id = f"bench-{next(self._runs)}"
        self.map_index = -1
        self.try_number = 1

    def xcom_pull(self, task_ids: Any = None, **_: Any) -> None:
        return None


def _context() -> dict[str, Any]:
    return {"ti": _TaskInstance(), "params": {}}


def measure(workdir: Path, rounds: int = ROUNDS) -> list[Row]:
    from airflow.providers.docker.operators.docker import DockerOperator
    from airflow.sdk import DAG

    from valohai_airflow.airflow.factory import build_dags
    from valohai_airflow.loading.project import compile_project

    project = workdir / "node-project"
    project.mkdir(parents=True)
    (project / "valohai.yaml").write_text(YAML)
    (dag,) = build_dags(compile_project(project / "valohai.yaml")).values()
    (ours,) = dag.tasks
    with DAG("bench_bare_docker", schedule=None):
        bare = DockerOperator(
            task_id="bare",
            image=IMAGE,
            command=["/bin/sh", "-c", "true"],
            auto_remove="force",
            mount_tmp_dir=False,
            network_mode="none",
            xcom_all=True,
            working_dir="/valohai/repository",
        )
    with quiet(workdir / "node.log"):
        ours.execute(_context())
        bare.execute(_context())
        base, subject = alternate(lambda: bare.execute(_context()), lambda: ours.execute(_context()), rounds)
    return [
        Row(
            "trivial node (`true`, busybox): ValohaiExecutionOperator.execute",
            subject,
            subject / base,
            f"baseline bare DockerOperator, same container; {rounds} alternating rounds; "
            f"overhead {1000 * (subject - base):.0f} ms per node",
            "≤ 1.25×",
            base,
        )
    ]
