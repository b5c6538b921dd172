"""An in-memory container engine for unit tests of code written against `engine.interface.ContainerEngine`.

It keeps containers in a dict and plays a health script per image instead of running anything:
`healthy` (healthy on the second look, like a server that needs a moment), `never` (stays
`starting`), `exits` (the server exits with code 3). Time is a `FakeClock` the caller's sleeps move,
so a health timeout passes without waiting. What the real Docker engine does is tested in
tests/integration (test_serving.py, test_deploy_reuse.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from valohai_airflow.engine.interface import (
    Container,
    ContainerNotFoundError,
    ContainerSpec,
    ContainerState,
    EngineError,
)


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: int = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


@dataclass
class FakeContainer:
    id: str
    spec: ContainerSpec
    status: str = "created"
    looks: int = 0  # inspections since it started
    restart_policy: str = ""


@dataclass
class FakeEngine:
    health: Mapping[str, str]  # image → healthy | never | exits; an image not named is not on the engine
    pullable: bool = False
    containers_by_id: dict[str, FakeContainer] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "memory://"

    def add_running(self, spec: ContainerSpec) -> str:
        """A container some earlier task started (the version being replaced)."""
        container_id = self.create(spec)
        self.containers_by_id[container_id].status = "running"
        return container_id

    def _get(self, ref: str) -> FakeContainer:
        for container in self.containers_by_id.values():
            if ref in (container.id, container.spec.name):
                return container
        raise ContainerNotFoundError(f"no container {ref}")

    def containers(self, labels: Mapping[str, str]) -> list[Container]:
        return [
            Container(c.id, c.status, dict(c.spec.labels))
            for c in self.containers_by_id.values()
            if all(c.spec.labels.get(k) == v for k, v in labels.items())
        ]

    def inspect(self, ref: str) -> ContainerState:
        container = self._get(ref)
        script = self.health.get(container.spec.image, "healthy")
        if container.status == "running" and container.spec.healthcheck is not None:
            container.looks += 1
            if script == "exits":
                container.status = "exited"
                return ContainerState(
                    "exited", exit_code=3, health="unhealthy", health_output="refused (exit code 1)"
                )
            if script == "healthy" and container.looks >= 2:
                return ContainerState("running", health="healthy", health_output="answered (exit code 0)")
            return ContainerState("running", health="starting", health_output="refused (exit code 1)")
        return ContainerState(container.status)

    def logs(self, ref: str, *, tail: int | None = None) -> str:
        return f"server log of {self._get(ref).spec.name}\n"

    def last_output_at(self, ref: str) -> datetime | None:
        self._get(ref)
        return None

    def image_id(self, image: str) -> str | None:
        return f"sha256:{image}" if image in self.health else None

    def pull(self, image: str) -> None:
        self.calls.append(f"pull {image}")
        if not self.pullable:
            raise EngineError(f"pull access denied for {image}")

    def create(self, spec: ContainerSpec) -> str:
        if any(c.spec.name == spec.name for c in self.containers_by_id.values()):
            raise EngineError(f"Conflict. The container name {spec.name!r} is already in use")
        container_id = f"{len(self.containers_by_id) + len(self.removed) + 1:064x}"
        self.containers_by_id[container_id] = FakeContainer(container_id, spec)
        self.calls.append(f"create {spec.name}")
        return container_id

    def start(self, ref: str) -> None:
        self._get(ref).status = "running"

    def keep_running(self, ref: str) -> None:
        self._get(ref).restart_policy = "unless-stopped"

    def kill(self, ref: str) -> None:
        self._get(ref).status = "exited"

    def remove(self, ref: str) -> None:
        container = self._get(ref)
        del self.containers_by_id[container.id]
        self.removed.append(container.id)

    def close(self) -> None:
        self.calls.append("close")
