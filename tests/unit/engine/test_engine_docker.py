"""What the Docker engine module decides without an engine: its URL, the health-check argument, the
last probe's output. Its calls on a real engine: tests/integration (serving, kill, worker cleanup)."""

from __future__ import annotations

import pytest

from valohai_airflow.engine.docker import (
    DEFAULT_URL,
    DockerEngine,
    engine_url,
    health_output,
    healthcheck_config,
)
from valohai_airflow.engine.interface import HealthCheck


def test_engine_url_is_the_configured_one_then_docker_host_then_the_socket(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    assert engine_url("unix:///run/other.sock") == "unix:///run/other.sock"
    assert engine_url(None) == "tcp://10.0.0.5:2375"
    monkeypatch.delenv("DOCKER_HOST")
    assert engine_url() == DEFAULT_URL == "unix://var/run/docker.sock"
    assert DockerEngine().url == DEFAULT_URL  # building an engine connects to nothing (the boundary refuses)


def test_healthcheck_config_is_in_nanoseconds() -> None:
    check = HealthCheck(("CMD", "probe"), 2.0, 5.0, 30.0, 3)
    assert healthcheck_config(check) == {
        "test": ["CMD", "probe"],
        "interval": 2_000_000_000,
        "timeout": 5_000_000_000,
        "start_period": 30_000_000_000,
        "retries": 3,
    }


def test_health_output_reads_the_last_probe() -> None:
    assert health_output({}) == "no health check has run yet"
    state = {
        "Health": {"Log": [{"Output": "old", "ExitCode": 1}, {"Output": "GET x: refused\n", "ExitCode": 1}]}
    }
    assert health_output(state) == "GET x: refused (exit code 1)"
