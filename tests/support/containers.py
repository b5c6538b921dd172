"""Which node containers the Docker engine really created, read from its own event log."""

from __future__ import annotations

import subprocess
import time

LABEL = "valohai-airflow"


def created_events(since: float, labels: list[str], fields: str) -> list[list[str]]:
    """`fields` (a `docker events --format` of the actor's attributes) of each container the
    engine created since `since` with every label filter in `labels`, one list of words each."""
    filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
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
            *filters,
            "--format",
            fields,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def containers_created(dag_id: str, run_id: str, since: float) -> list[str]:
    """Node task ids of the containers the engine created for this run of `dag_id` since `since`
    (label filter: runs a second apart must not see each other's containers)."""
    events = created_events(
        since,
        [f"{LABEL}.dag={dag_id}", f"{LABEL}.run={run_id}"],
        f'{{{{index .Actor.Attributes "{LABEL}.node"}}}}',
    )
    return sorted(word for words in events for word in words)
