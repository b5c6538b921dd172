"""The Docker engine: the one module that calls Docker's API client.

Node containers themselves are created and run by Airflow's Docker provider (`DockerOperator`, with
its hook's client); everything the project does beside it (labels searches, OOM state, log reads,
force-removal, leftovers, serving containers, the guard) goes through `DockerEngine`, on the same URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest, Mount

from valohai_airflow.engine.interface import (
    Container,
    ContainerNotFoundError,
    ContainerSpec,
    ContainerState,
    EngineError,
    HealthCheck,
)

DEFAULT_URL = "unix://var/run/docker.sock"
#: What the Docker provider's operator raises when the engine refuses a call (a missing image, a 404
#: after the container was removed under its `wait`).
DockerAPIError = APIError


def engine_url(configured: str | None = None) -> str:
    """The engine's URL: the configured one (`[valohai] docker_url`, an operator's `docker_url`), else
    `DOCKER_HOST`, else the local socket; the same rule as the Docker provider's operator."""
    return configured or os.environ.get("DOCKER_HOST") or DEFAULT_URL


def bind_mounts(mounts: Sequence[tuple[str, str, bool]]) -> list[Mount]:
    """Bind mounts from (host path, container path, read only)."""
    return [Mount(target, source, type="bind", read_only=ro) for source, target, ro in mounts]


def gpu_requests(gpus: str) -> list[DeviceRequest]:
    """The device request for `gpus` NVIDIA GPUs (`all`, or a count)."""
    count = -1 if gpus == "all" else int(gpus)
    return [DeviceRequest(driver="nvidia", count=count, capabilities=[["gpu"]])]


class HostConfigClient:
    """An APIClient with host-config settings the Docker provider's operator has no argument for (e.g.
    NanoCpus, the hard CPU quota `docker run --cpus` sets) added to every `create_host_config`; all
    else is the client's."""

    def __init__(self, client: docker.APIClient, **extra: Any) -> None:
        self._client = client
        self._extra = extra

    def create_host_config(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.create_host_config(*args, **{**kwargs, **self._extra})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class OutputTapClient:
    """An APIClient whose streamed `attach` also hands each chunk of the container's output to `tap`
    as it arrives, after the operator has logged it (a step's stop-condition watches its metadata this
    way); all else is the client's."""

    def __init__(self, client: Any, tap: Callable[[bytes], None]) -> None:
        self._client = client
        self._tap = tap

    def attach(self, *args: Any, **kwargs: Any) -> Any:
        stream = self._client.attach(*args, **kwargs)
        return self._tee(stream) if kwargs.get("stream") else stream

    def _tee(self, stream: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in stream:
            yield chunk
            self._tap(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def healthcheck_config(check: HealthCheck) -> dict[str, Any]:
    """Docker's `healthcheck` argument of a container create call (durations in nanoseconds)."""

    def ns(seconds: float) -> int:
        return int(seconds * 1_000_000_000)

    return {
        "test": list(check.test),
        "interval": ns(check.interval_seconds),
        "timeout": ns(check.timeout_seconds),
        "start_period": ns(check.start_period_seconds),
        "retries": check.retries,
    }


def health_output(state: Mapping[str, Any]) -> str:
    """The last health probe's output from a container's Docker `State` (what a failure reports)."""
    log = (state.get("Health") or {}).get("Log") or []
    if not log:
        return "no health check has run yet"
    last = log[-1]
    text = str(last.get("Output") or "").strip()
    return f"{text or 'no output'} (exit code {last.get('ExitCode')})"


class DockerEngine:
    """A Docker engine through `docker.APIClient`: its own client on `url`, or a given one (the
    Docker provider hook's, so both talk to the same engine with the same TLS settings)."""

    def __init__(self, url: str | None = None, *, client: docker.APIClient | None = None) -> None:
        self._url = engine_url(url)
        self._given = client
        self._client: docker.APIClient | None = client

    @property
    def url(self) -> str:
        return self._url

    @property
    def client(self) -> docker.APIClient:
        """Connected on first use: building an engine costs nothing while no call is made."""
        if self._client is None:
            try:
                self._client = docker.APIClient(base_url=self._url, version="auto")
            except DockerException as error:
                raise EngineError(f"no Docker engine at {self._url}: {error}") from error
        return self._client

    def _call(self, ref: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except NotFound as error:
            raise ContainerNotFoundError(f"no container {ref[:64]}: {error.explanation or error}") from error
        except DockerException as error:
            raise EngineError(str(getattr(error, "explanation", None) or error)) from error

    def containers(self, labels: Mapping[str, str]) -> list[Container]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        found = self._call("", "containers", all=True, filters=filters)
        return [Container(str(c["Id"]), str(c.get("State", "?")), dict(c.get("Labels") or {})) for c in found]

    def inspect(self, ref: str) -> ContainerState:
        info = self._call(ref, "inspect_container", ref)
        state = info.get("State") or {}
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        published = {
            int(port.split("/", 1)[0]): f"{b[0].get('HostIp')}:{b[0].get('HostPort')}"
            for port, b in ports.items()
            if b and port.endswith("/tcp")
        }
        return ContainerState(
            status=str(state.get("Status", "")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            health=(state.get("Health") or {}).get("Status"),
            health_output=health_output(state),
            published=published,
        )

    def logs(self, ref: str, *, tail: int | None = None) -> str:
        raw = self._call(ref, "logs", ref, stdout=True, stderr=True, tail="all" if tail is None else tail)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else ""

    def last_output_at(self, ref: str) -> datetime | None:
        raw = self._call(ref, "logs", ref, stdout=True, stderr=True, timestamps=True, tail=1)
        text = raw.decode(errors="replace").strip() if isinstance(raw, bytes) else ""
        if not text:
            return None
        stamp = text.split(" ", 1)[0]
        try:
            return datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00")
        except ValueError:
            return datetime.now(UTC)

    def image_id(self, image: str) -> str | None:
        try:
            return str(self.client.inspect_image(image)["Id"])
        except ImageNotFound:
            return None
        except DockerException as error:
            raise EngineError(str(error)) from error

    def pull(self, image: str) -> None:
        self._call(image, "pull", image)

    def create(self, spec: ContainerSpec) -> str:
        host_config = self._call(
            spec.name,
            "create_host_config",
            mounts=bind_mounts(spec.mounts),
            network_mode=spec.network_mode,
            port_bindings=dict(spec.port_bindings) or None,
        )
        created = self._call(
            spec.name,
            "create_container",
            spec.image,
            command=list(spec.command),
            name=spec.name,
            labels=dict(spec.labels),
            environment=dict(spec.environment),
            working_dir=spec.working_dir,
            healthcheck=healthcheck_config(spec.healthcheck) if spec.healthcheck else None,
            ports=list(spec.port_bindings) or None,
            host_config=host_config,
        )
        return str(created["Id"])

    def start(self, ref: str) -> None:
        self._call(ref, "start", ref)

    def keep_running(self, ref: str) -> None:
        self._call(ref, "update_container", ref, restart_policy={"Name": "unless-stopped"})

    def kill(self, ref: str) -> None:
        self._call(ref, "kill", ref)

    def remove(self, ref: str) -> None:
        self._call(ref, "remove_container", ref, force=True)

    def close(self) -> None:
        """Close a client this engine opened (a given one belongs to its owner)."""
        if self._client is not None and self._client is not self._given:
            self._client.close()
            self._client = None
