"""The blue/green rollout (`runtime.rollout`) against the in-memory engine of tests/support/engine.py:
a first version, a healthy replacement, an unhealthy one and one whose server exits. The same
rollout on the real Docker engine: tests/integration/test_serving.py and test_deploy_reuse.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.engine import FakeClock, FakeEngine
from valohai_airflow.engine.interface import HealthCheck
from valohai_airflow.runtime.rollout import Rollout
from valohai_airflow.runtime.serving import EndpointServer, ServingError, deployment_labels

LABEL = "valohai-airflow"
CHECK = HealthCheck(("CMD", "probe"), 1.0, 5.0, 30.0, 3)


def server(base: Path, version: str, image: str, endpoint: str = "predict") -> EndpointServer:
    directory = base / "proj" / "dep" / version / endpoint
    (directory / "repository").mkdir(parents=True)
    return EndpointServer(
        endpoint=endpoint,
        deployment="dep",
        deployment_id="dep",
        version=version,
        image=image,
        command=("python3", "-c", "serve"),
        working_dir="/valohai/repository",
        environment={"VALOHAI_PORT": "8000"},
        mounts=((str(directory / "repository"), "/valohai/repository", True),),
        labels={
            LABEL: "1",
            **deployment_labels(LABEL, "proj", "dep"),
            f"{LABEL}.endpoint": endpoint,
            f"{LABEL}.version": version,
        },
        name=f"vh-serve-dep-{endpoint}-{version}",
        port=8000,
        publish=None,
        healthcheck=CHECK,
        health_timeout_seconds=30.0,
        directory=directory,
    )


def rollout(engine: FakeEngine, base: Path, clock: FakeClock) -> Rollout:
    return Rollout(engine, "deploy", LABEL, base, "/health", clock=clock, sleep=clock.sleep)


def test_a_first_version_is_served_once_healthy(tmp_path: Path) -> None:
    engine, clock = FakeEngine({"srv:1": "healthy"}), FakeClock()
    new = server(tmp_path, "v1", "srv:1")
    started = rollout(engine, tmp_path, clock).run("proj", "dep", [new])
    ((container_id, served),) = started.items()
    assert served is new
    container = engine.containers_by_id[container_id]
    assert (container.status, container.restart_policy) == ("running", "unless-stopped")
    assert container.spec.healthcheck == CHECK and container.spec.network_mode is None  # the engine's default
    assert clock.sleeps == 1 and engine.removed == [] and new.directory.is_dir()


def test_a_healthy_version_replaces_the_previous_one(tmp_path: Path) -> None:
    engine, clock = FakeEngine({"srv:1": "healthy", "srv:2": "healthy"}), FakeClock()
    old = server(tmp_path, "v1", "srv:1")
    old_id = engine.add_running(old.spec)
    other_labels = {**old.labels, f"{LABEL}.deployment": "else"}
    other_deployment = engine.add_running(replace(old.spec, name="other", labels=other_labels))
    new = server(tmp_path, "v2", "srv:2")
    started = rollout(engine, tmp_path, clock).run("proj", "dep", [new])
    assert engine.removed == [old_id]  # only this deployment's previous version
    assert set(engine.containers_by_id) == {*started, other_deployment}
    assert not old.directory.exists() and not (tmp_path / "proj" / "dep" / "v1").exists()
    assert new.directory.is_dir()


def test_an_unhealthy_version_is_removed_and_the_previous_keeps_serving(tmp_path: Path) -> None:
    engine, clock = FakeEngine({"srv:1": "healthy", "srv:bad": "never"}), FakeClock()
    old = server(tmp_path, "v1", "srv:1")
    old_id = engine.add_running(old.spec)
    new = server(tmp_path, "v2", "srv:bad")
    ro = rollout(engine, tmp_path, clock)
    with pytest.raises(ServingError) as caught:
        ro.run("proj", "dep", [new])
    message = str(caught.value)
    assert message.startswith("node 'deploy': endpoint 'predict' of deployment 'dep' version v2"), message
    assert "did not become healthy within 30 s (health_timeout_seconds" in message, message
    assert "GET 127.0.0.1:8000/health inside the container): refused (exit code 1)" in message, message
    assert (
        "the previous version keeps serving" in message and "server log of vh-serve-dep-predict-v2" in message
    )
    assert list(engine.containers_by_id) == [old_id] and len(engine.removed) == 1
    assert old.directory.is_dir() and not new.directory.exists()
    assert clock.sleeps == 60 and ro.pending == []  # 30 s of 0.5 s polls on the fake clock


def test_a_server_that_exits_fails_at_once_and_removes_every_new_container(tmp_path: Path) -> None:
    engine, clock = FakeEngine({"srv:ok": "healthy", "srv:crash": "exits"}), FakeClock()
    good, bad = server(tmp_path, "v1", "srv:ok", "a"), server(tmp_path, "v1", "srv:crash", "b")
    with pytest.raises(
        ServingError, match="its server exited with code 3 before it became healthy"
    ) as caught:
        rollout(engine, tmp_path, clock).run("proj", "dep", [good, bad])
    assert "nothing else was serving it" in str(caught.value)
    assert engine.containers_by_id == {} and len(engine.removed) == 2  # the healthy sibling too
    assert not good.directory.exists() and not bad.directory.exists()


def test_an_image_that_cannot_be_pulled_starts_nothing(tmp_path: Path) -> None:
    engine, clock = FakeEngine({}), FakeClock()
    new = server(tmp_path, "v1", "srv:missing")
    with pytest.raises(ServingError, match="image 'srv:missing' is not on this Docker engine and could not"):
        rollout(engine, tmp_path, clock).run("proj", "dep", [new])
    assert engine.calls == ["pull srv:missing"] and engine.containers_by_id == {}


def test_abort_removes_the_containers_not_healthy_yet(tmp_path: Path) -> None:
    engine, clock = FakeEngine({"srv:slow": "never"}), FakeClock()
    ro = rollout(engine, tmp_path, clock)

    def killed(seconds: float) -> None:  # on_kill arrives while the rollout polls
        ro.abort()

    ro.sleep = killed
    with pytest.raises(ServingError, match="was removed by someone else while it was starting"):
        ro.run("proj", "dep", [server(tmp_path, "v1", "srv:slow")])
    assert engine.containers_by_id == {} and len(engine.removed) == 1
