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
from typing import Any

from celery.signals import worker_init

from valohai_airflow.airflow.operators import WORKER_LABEL, worker_hostname
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.engine.docker import DockerEngine
from valohai_airflow.engine.interface import EngineError, remove_labelled

log = logging.getLogger(__name__)


def remove_leftover_containers(*, docker_url: str | None = None, hostname: str | None = None) -> list[str]:
    """Force-remove every node container labelled with this worker's hostname; returns their ids."""
    engine = DockerEngine(docker_url or valohai_settings().docker_url)
    host = hostname or worker_hostname()
    try:
        return remove_labelled(
            engine, {WORKER_LABEL: host}, log, f"left by an earlier worker {host} on {engine.url}"
        )
    finally:
        engine.close()


def _on_worker_init(**_: Any) -> None:
    try:
        removed = remove_leftover_containers()
    except (EngineError, OSError) as error:  # the worker still starts; its tasks will say more
        log.warning("valohai-airflow: leftover node containers not checked, no Docker engine: %s", error)
        return
    log.info("valohai-airflow: %d leftover node container(s) removed at worker start", len(removed))


worker_init.connect(_on_worker_init)
