"""The container engine every node and serving container goes through: one small interface.

Docker is the engine today (`engine.docker`); a Kubernetes pod backend would be one more class with
these methods, and the runtime above it (the serving rollout, leftover cleanup, the execution
operator's bookkeeping) stays as it is. Containers are named by id or name (`ref`) and found by labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from valohai_airflow.errors import ValohaiAirflowError


class EngineError(ValohaiAirflowError):
    """The engine refused or failed a call (it is down, the image is missing, a bad argument, ...)."""


class ContainerNotFoundError(EngineError):
    """No container by that id or name (it was removed, or not created yet)."""


@dataclass(frozen=True)
class HealthCheck:
    """A probe the engine runs inside the container; `healthy` once it passes."""

    test: tuple[str, ...]
    interval_seconds: float
    timeout_seconds: float
    start_period_seconds: float
    retries: int


@dataclass(frozen=True)
class ContainerSpec:
    """What one container is created from (an endpoint server; node containers go through Airflow's
    Docker provider)."""

    name: str
    image: str
    command: tuple[str, ...]
    working_dir: str
    environment: Mapping[str, str]
    mounts: Sequence[tuple[str, str, bool]]  # (host path, container path, read only)
    labels: Mapping[str, str]
    network_mode: str | None = None  # None: the engine's default network
    port_bindings: Mapping[int, tuple[str, int]] = field(default_factory=dict)  # container port → host
    healthcheck: HealthCheck | None = None


@dataclass(frozen=True)
class Container:
    """A container as a label search finds it."""

    id: str
    status: str  # created, running, exited, dead, ...
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ContainerState:
    """What the engine knows of one container now."""

    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    health: str | None = None  # starting, healthy, unhealthy; None without a health check
    health_output: str = "no health check has run yet"  # the last probe's output and exit code
    published: Mapping[int, str] = field(default_factory=dict)  # container port → host address:port


class Log(Protocol):
    """A logger (the standard library's, or an Airflow task's)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class ContainerEngine(Protocol):
    """The calls the project makes on a container engine."""

    @property
    def url(self) -> str:
        """Where the engine listens (what a guard process connects to)."""
        ...

    def containers(self, labels: Mapping[str, str]) -> list[Container]:
        """Every container (running or not) carrying all of `labels`."""
        ...

    def inspect(self, ref: str) -> ContainerState: ...

    def logs(self, ref: str, *, tail: int | None = None) -> str: ...

    def last_output_at(self, ref: str) -> datetime | None:
        """When the container last printed a line (UTC), None before its first."""
        ...

    def image_id(self, image: str) -> str | None:
        """The engine's id of `image`, None when it does not have it."""
        ...

    def pull(self, image: str) -> None: ...

    def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; returns its id."""
        ...

    def start(self, ref: str) -> None: ...

    def keep_running(self, ref: str) -> None:
        """Have the engine restart the container when it stops or the engine restarts."""
        ...

    def kill(self, ref: str) -> None: ...

    def remove(self, ref: str) -> None:
        """Force-remove: stop at once (no grace period) and delete."""
        ...

    def close(self) -> None: ...


def force_remove(engine: ContainerEngine, ref: str, log: Log, why: str = "", *, quiet: bool = False) -> bool:
    """Force-remove a container that may be gone already (removed by `on_kill`, a guard, the engine):
    True when this call removed it. `quiet`: a failure is expected (after a SIGTERM) and not logged."""
    if why:
        log.info("Removing container %s (%s)", ref[:12], why)
    try:
        engine.remove(ref)
    except EngineError as error:
        if not quiet:
            log.info("Container %s already gone: %s", ref[:12], error)
        return False
    return True


def remove_labelled(engine: ContainerEngine, labels: Mapping[str, str], log: Log, why: str) -> list[str]:
    """Force-remove every container carrying `labels` (leftovers of a killed try or worker); their ids."""
    removed = []
    for container in engine.containers(labels):
        log.warning("Removing container %s (%s), %s", container.id[:12], container.status, why)
        if force_remove(engine, container.id, log):
            removed.append(container.id)
    return removed
