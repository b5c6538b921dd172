"""Celery worker start: remove the node containers that a killed predecessor left on its engine.

A worker killed with SIGKILL (OOM killer, a crash, a power cut) cannot stop its node containers:
Airflow fails the task once its heartbeat stops and retries it, perhaps on another worker, while
the old container keeps running (or stays `Exited` after a reboot) on the dead worker's Docker
engine. Every node container carries the label `valohai-airflow.worker=<the worker's Airflow
hostname>` (`[core] hostname_callable`, the host's FQDN by default). When a worker with that
hostname starts, none of its tasks runs yet, so each such container on its engine is a leftover and
is force-removed before the worker takes its first task (Celery's `worker_init` signal). Hence one
Celery worker per hostname and engine (the usual one worker per host, with `--concurrency`).

Enabled by importing this module into the worker, through Celery's `imports` setting:
`[celery] extra_celery_config = {"imports": ["valohai_airflow.airflow.worker"]}`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import docker
from celery.signals import worker_init
from docker.errors import DockerException

from valohai_airflow.airflow.operators import WORKER_LABEL, worker_hostname
from valohai_airflow.airflow.settings import valohai_settings

log = logging.getLogger(__name__)


def remove_leftover_containers(*, docker_url: str | None = None, hostname: str | None = None) -> list[str]:
    """Force-remove every node container labelled with this worker's hostname; returns their ids."""
    url = (
        docker_url
        or valohai_settings().docker_url
        or os.environ.get("DOCKER_HOST")
        or "unix://var/run/docker.sock"
    )
    host = hostname or worker_hostname()
    client = docker.APIClient(base_url=url, version="auto")
    try:
        removed = []
        for container in client.containers(all=True, filters={"label": f"{WORKER_LABEL}={host}"}):
            client.remove_container(container["Id"], force=True)
            removed.append(str(container["Id"]))
            log.warning(
                "Removed node container %s (%s) left by an earlier worker %s on %s",
                container["Id"][:12],
                container.get("State", "?"),
                host,
                url,
            )
        return removed
    finally:
        client.close()


def _on_worker_init(**_: Any) -> None:
    try:
        removed = remove_leftover_containers()
    except (DockerException, OSError) as error:  # the worker still starts; its tasks will say more
        log.warning("valohai-airflow: leftover node containers not checked, no Docker engine: %s", error)
        return
    log.info("valohai-airflow: %d leftover node container(s) removed at worker start", len(removed))


worker_init.connect(_on_worker_init)
