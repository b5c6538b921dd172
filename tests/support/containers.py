"""Which node containers the Docker engine really created, read from its own event log."""

from __future__ import annotations

import subprocess
import time

LABEL = "valohai-airflow"


def containers_created(dag_id: str, run_id: str, since: float) -> list[str]:
    """Node task ids of the containers the engine created for this run of `dag_id` since `since`
    (label filter: runs a second apart must not see each other's containers)."""
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{time.time():.3f}",
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            f"label={LABEL}.dag={dag_id}",
            "--filter",
            f"label={LABEL}.run={run_id}",
            "--format",
            f'{{{{index .Actor.Attributes "{LABEL}.node"}}}}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return sorted(out.split())
