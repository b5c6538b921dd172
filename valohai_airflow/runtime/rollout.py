"""Blue/green rollout of a deployment version's endpoint servers on a container engine.

Start one container per endpoint (`serving.prepare_servers` decided them), wait until the engine
reports every new container `healthy`, then have the engine keep them running and remove the
previous version's containers of the deployment (found by the labels project + deployment) with
their directories. A new container that exits, or is not healthy within `health_timeout_seconds`,
fails the rollout with the last health probe's output and the server's log; the new containers are
removed and the old ones keep serving. Works on any `ContainerEngine`; the airflow layer only maps
the result onto its task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from valohai_airflow.engine.interface import (
    Container,
    ContainerEngine,
    ContainerNotFoundError,
    ContainerState,
    EngineError,
    Log,
    force_remove,
)
from valohai_airflow.runtime.serving import (
    EndpointServer,
    ServingError,
    deployment_labels,
    directory_of,
    remove_directory,
)

LOG_TAIL_LINES = 20
POLL_SECONDS = 0.5


@dataclass
class Rollout:
    """One version's rollout; `pending` holds the new containers not healthy yet (what `abort` removes)."""

    engine: ContainerEngine
    node_name: str
    label: str  # the label prefix every valohai-airflow container carries
    base_dir: Path  # the host directory of the versions' trees
    health_path: str = "/"
    log: Log = field(default_factory=lambda: logging.getLogger(__name__))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    pending: list[str] = field(default_factory=list)

    def _fail(self, text: str) -> ServingError:
        return ServingError(f"node {self.node_name!r}: {text}")

    def run(
        self, project_name: str, deployment: str, servers: Sequence[EndpointServer]
    ) -> dict[str, EndpointServer]:
        """Serve `servers` (one version of deployment id `deployment`) in place of the previous
        version; returns the new containers' ids with their servers."""
        if not servers:
            return {}
        first = servers[0]
        try:
            previous = self.engine.containers(deployment_labels(self.label, project_name, deployment))
        except EngineError as error:
            for server in servers:
                remove_directory(server.directory)
            raise self._fail(
                f"deployment {first.deployment!r} version {first.version} was published but cannot be served: "
                f"the Docker engine did not answer ({error})"
            ) from error
        replacing = any(c.status == "running" for c in previous)
        started: dict[str, EndpointServer] = {}
        try:
            for server in servers:
                started[self._start(server)] = server
            for container_id, server in started.items():
                self._wait_healthy(container_id, server, replacing)
        except BaseException:
            for container_id in started:
                force_remove(self.engine, container_id, self.log, "the new version did not become healthy")
            for server in servers:
                remove_directory(server.directory)
            raise
        finally:
            self.pending = []
        for container_id in started:
            try:
                self.engine.keep_running(container_id)
            except EngineError as error:
                self.log.warning("Could not set a restart policy on %s: %s", container_id[:12], error)
        self._retire([c for c in previous if c.id not in started])
        return started

    def _retire(self, previous: list[Container]) -> None:
        for container in previous:
            labels = container.labels
            why = f"replaced: endpoint {labels.get(f'{self.label}.endpoint')!r} version {labels.get(f'{self.label}.version')}"
            force_remove(self.engine, container.id, self.log, why)
            directory = directory_of(labels, self.base_dir, self.label)
            if directory is not None:
                remove_directory(directory)

    def abort(self) -> None:
        """The task was killed: remove the containers it started that are not serving yet."""
        for container_id in self.pending:
            force_remove(self.engine, container_id, self.log, "the task was killed before it was healthy")

    def _start(self, server: EndpointServer) -> str:
        self._ensure_image(server)
        try:
            container_id = self.engine.create(server.spec)
        except EngineError as error:
            hint = (
                f"; `publish` needs an engine with a bridge network (this one answered: {error})"
                if server.publish is not None
                else f": {error}"
            )
            raise self._fail(f"{server.describe()}: the container could not be created{hint}") from error
        self.pending.append(container_id)
        try:
            self.engine.start(container_id)
        except EngineError as error:
            force_remove(self.engine, container_id, self.log, "it did not start")
            raise self._fail(f"{server.describe()}: the container did not start: {error}") from error
        if server.publish is not None:
            self._check_published(container_id, server)
        self.log.info(
            "Started %s as container %s (%s), waiting up to %g s until it is healthy on its 127.0.0.1:%s",
            server.describe(),
            server.name,
            container_id[:12],
            server.health_timeout_seconds,
            server.port,
        )
        return container_id

    def _check_published(self, container_id: str, server: EndpointServer) -> None:
        """An engine without a bridge network (`dockerd --bridge=none`) starts the container with
        loopback only and binds nothing, silently: say so instead of pretending the port is there."""
        if server.port in self.engine.inspect(container_id).published:
            return
        force_remove(self.engine, container_id, self.log, "its port could not be published")
        raise self._fail(
            f"{server.describe()}: `publish` asked for 127.0.0.1:{server.publish}, "
            "but the Docker engine bound no port: `publish` needs an engine with a bridge network, and this "
            "one has none (dockerd --bridge=none?). Remove `publish` from valohai-airflow.yaml (the endpoint "
            "is still reachable inside its container on 127.0.0.1) or use an engine with a network"
        )

    def _ensure_image(self, server: EndpointServer) -> None:
        try:
            if self.engine.image_id(server.image) is None:
                self.engine.pull(server.image)
        except EngineError as error:
            raise self._fail(
                f"{server.describe()}: image {server.image!r} is not on this Docker "
                f"engine and could not be pulled ({error}); build or load it on the worker, or fix the "
                "endpoint's `image:` in valohai.yaml. Nothing was started"
            ) from error

    def _wait_healthy(self, container_id: str, server: EndpointServer, replacing: bool) -> None:
        deadline = self.clock() + server.health_timeout_seconds
        state = ContainerState(status="")
        while True:
            try:
                state = self.engine.inspect(container_id)
            except ContainerNotFoundError as error:
                raise self._fail(
                    f"{server.describe()}: container {server.name} was removed by someone else while it was starting"
                ) from error
            if state.health == "healthy":
                self.log.info("%s is healthy: %s", server.describe(), state.health_output)
                return
            if state.status in ("exited", "dead"):
                problem = f"its server exited with code {state.exit_code} before it became healthy"
                break
            if self.clock() >= deadline:
                problem = (
                    f"it did not become healthy within {server.health_timeout_seconds:g} s "
                    "(health_timeout_seconds in valohai-airflow.yaml)"
                )
                break
            self.sleep(POLL_SECONDS)
        keeps = "the previous version keeps serving" if replacing else "nothing else was serving it"
        raise self._fail(
            f"{server.describe()} (container {server.name}): {problem}. "
            f"Last health check (GET 127.0.0.1:{server.port}{self.health_path} inside the container): "
            f"{state.health_output}. The new container was removed; {keeps}. Server log:\n{self._log_tail(container_id)}"
        )

    def _log_tail(self, container_id: str) -> str:
        try:
            text = self.engine.logs(container_id, tail=LOG_TAIL_LINES).rstrip()
        except EngineError as error:
            return f"(no log: {error})"
        return text or "(the server printed nothing)"
