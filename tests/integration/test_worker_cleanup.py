"""The Celery worker-start cleanup (valohai_airflow.airflow.worker) on the real engine: it removes
every node container labelled with its own hostname, running or exited, and nothing else."""

from __future__ import annotations

import subprocess
import uuid

from tests.integration.conftest import BUSYBOX
from valohai_airflow.airflow.operators import LABEL, WORKER_LABEL


def _container(*labels: str, command: str) -> str:
    args = [arg for label in labels for arg in ("--label", label)]
    started = subprocess.run(
        ["docker", "run", "-d", "--network", "none", *args, BUSYBOX, "sh", "-c", command],
        capture_output=True,
        text=True,
        check=True,
    )
    return started.stdout.strip()


def _exists(container_id: str) -> bool:
    return (
        subprocess.run(["docker", "inspect", container_id], capture_output=True, check=False).returncode == 0
    )


def test_worker_start_removes_its_own_leftovers_only(docker_engine: None) -> None:
    from valohai_airflow.airflow.worker import remove_leftover_containers

    me, other = f"cleanup-{uuid.uuid4().hex[:8]}", f"cleanup-{uuid.uuid4().hex[:8]}"
    running = _container(f"{LABEL}=1", f"{WORKER_LABEL}={me}", command="sleep 300")
    exited = _container(f"{LABEL}=1", f"{WORKER_LABEL}={me}", command="exit 137")
    others = _container(f"{LABEL}=1", f"{WORKER_LABEL}={other}", command="sleep 300")
    try:
        removed = remove_leftover_containers(hostname=me)
        assert sorted(removed) == sorted([running, exited])
        assert not _exists(running) and not _exists(exited)
        assert _exists(others)  # another worker's node, on a shared engine: still running
        assert remove_leftover_containers(hostname=me) == []
    finally:
        subprocess.run(["docker", "rm", "-f", running, exited, others], capture_output=True, check=False)
