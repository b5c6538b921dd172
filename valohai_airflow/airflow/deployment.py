"""The deployment node's task: publishes the endpoint bundle (`runtime.deployment`) and, when the
sidecar says `deployments: {<name>: {serve: true}}`, serves it (`runtime.serving`).

It gathers what the runtime needs from Airflow (the upstream manifests of this run, the store) and
asks the Docker engine for the endpoint images' ids, which the bundle records when the worker has
the image; an engine that cannot answer leaves them unknown instead of failing.

Serving: one container per endpoint, created with the runtime's command, mounts, labels and
Docker HEALTHCHECK, then the task waits until the engine reports every new container `healthy`.
Only then are the previous version's containers of the deployment (found by the labels project +
deployment) removed, with their directories. A new container that exits, or is not healthy within
`health_timeout_seconds`, fails the task with the last health probe's output and the server's log;
the new containers are removed and the old ones keep serving. The serving containers outlive the
task on purpose: they are the deployment (restart policy `unless-stopped` once healthy).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import Mount

from valohai_airflow.airflow.operators import LABEL, upstream_values
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.runtime.deployment import DeploymentRequest, publish
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.serving import (
    EndpointServer,
    ServingRequest,
    deployment_labels,
    directory_of,
    health_output,
    label_filters,
    prepare_servers,
    remove_directory,
    version_dir,
)
from valohai_airflow.spec.sidecar import DeploymentSettings
from valohai_airflow.store import open_store

SERVING_XCOM_KEY = "valohai_serving"
SERVING_DIR = "deployments"  # below [valohai] work_dir; dag ids always hold "__", so no clash
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.5


class ValohaiDeploymentOperator(BaseOperator):
    """Publishes a versioned endpoint bundle and returns `id` / `version_id` for deployment edges."""

    template_fields: Sequence[str] = ()
    ui_color = "#b5a7f4"

    def __init__(
        self,
        *,
        project_name: str,
        pipeline: PipelinePlan,
        node: NodePlan,
        docker_url: str | None = None,
        project_root: str | None = None,
        serving: DeploymentSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=node.task_id, task_display_name=node.name, **kwargs)
        self.project_name = project_name
        self.pipeline = pipeline
        self.node = node
        self.docker_url = docker_url
        self.project_root = project_root
        self.serving = serving
        self._pending: list[str] = []  # new serving containers not yet healthy (on_kill removes them)

    def _client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.docker_url) if self.docker_url else docker.from_env().api

    def _image_ids(self) -> dict[str, str | None]:
        images = sorted({e.image for e in self.node.endpoint_specs})
        ids: dict[str, str | None] = dict.fromkeys(images)
        try:
            client = self._client()
            for image in images:
                try:
                    ids[image] = str(client.inspect_image(image)["Id"])
                except DockerException:
                    self.log.info("Image %s is not on this Docker engine: its id stays unknown", image)
        except DockerException as error:
            self.log.info("No Docker engine to ask for image ids (%s)", error)
        return ids

    def execute(self, context: Any) -> dict[str, Any]:
        settings = valohai_settings()
        ti = context["ti"]
        request = DeploymentRequest(
            key=ExecutionKey(self.dag_id, ti.run_id, self.node.task_id, ti.map_index, ti.try_number),
            project_name=self.project_name,
            pipeline=self.pipeline,
            node=self.node,
            upstream=upstream_values(context, self.pipeline, self.node),
            store=open_store(settings.store_url, **settings.s3_options),
            image_ids=self._image_ids(),
            s3_options=settings.s3_options,
        )
        try:
            result = publish(request)
        except ValohaiAirflowError as error:
            raise self._error(error) from error
        deployment = result["deployment"]
        self.log.info(
            "Published deployment %s version %s: %s",
            deployment["name"],
            deployment["version_id"],
            deployment["bundle_uri"],
        )
        if self.serving is not None and self.serving.serve:
            served = self._serve(context, deployment, request)
            ti.xcom_push(key=SERVING_XCOM_KEY, value=served)
        return result

    def _error(self, error: Exception) -> AirflowException:
        text = str(error)
        return AirflowException(text if text.startswith("node ") else f"node {self.node.name!r}: {text}")

    # -- serving ---------------------------------------------------------------------------------

    def _serve(
        self, context: Any, deployment: dict[str, Any], published: DeploymentRequest
    ) -> list[dict[str, Any]]:
        """Start the version's containers, wait until all are healthy, then retire the old version."""
        assert self.serving is not None
        if self.project_root is None:
            raise AirflowException(
                f"node {self.node.name!r}: serving needs the project folder (project_root)"
            )
        base_dir = valohai_settings().work_dir / SERVING_DIR
        request = ServingRequest(
            project_name=self.project_name,
            project_root=Path(self.project_root),
            node=self.node,
            deployment=deployment,
            settings=self.serving,
            store=published.store,
            base_dir=base_dir,
            label=LABEL,
            dag_id=self.dag_id,
            run_id=context["ti"].run_id,
        )
        try:
            servers = prepare_servers(request)
        except (ValohaiAirflowError, OSError) as error:
            shutil.rmtree(
                version_dir(
                    base_dir, self.project_name, str(deployment["id"]), str(deployment["version_id"])
                ),
                ignore_errors=True,
            )
            raise self._error(error) from error
        wanted = deployment_labels(LABEL, self.project_name, str(deployment["id"]))
        try:
            client = self._client()
            previous = client.containers(all=True, filters={"label": label_filters(wanted)})
        except DockerException as error:
            for server in servers:
                remove_directory(server.directory)
            raise AirflowException(
                f"node {self.node.name!r}: deployment {deployment['name']!r} version {deployment['version_id']} "
                f"was published but cannot be served: the Docker engine did not answer ({error})"
            ) from error
        started: dict[str, EndpointServer] = {}
        try:
            for server in servers:
                started[self._start(client, server)] = server
            for container_id, server in started.items():
                self._wait_healthy(
                    client, container_id, server, any(c.get("State") == "running" for c in previous)
                )
        except BaseException:
            for container_id in started:
                self._remove(client, container_id, "the new version did not become healthy")
            for server in servers:
                remove_directory(server.directory)
            raise
        finally:
            self._pending = []
        for container_id in started:
            try:
                client.update_container(container_id, restart_policy={"Name": "unless-stopped"})
            except DockerException as error:
                self.log.warning("Could not set a restart policy on %s: %s", container_id[:12], error)
        for container in previous:
            if container["Id"] in started:
                continue
            labels = container.get("Labels") or {}
            self._remove(
                client,
                container["Id"],
                f"replaced: endpoint {labels.get(f'{LABEL}.endpoint')!r} version {labels.get(f'{LABEL}.version')}",
            )
            directory = directory_of(labels, base_dir, LABEL)
            if directory is not None:
                remove_directory(directory)
        return [
            {
                "endpoint": server.endpoint,
                "container": container_id,
                "name": server.name,
                "version_id": server.version,
                "port": server.port,
                "publish": f"127.0.0.1:{server.publish}" if server.publish is not None else None,
            }
            for container_id, server in started.items()
        ]

    def _start(self, client: docker.APIClient, server: EndpointServer) -> str:
        self._ensure_image(client, server)
        host_config = client.create_host_config(
            mounts=[Mount(target, source, type="bind", read_only=ro) for source, target, ro in server.mounts],
            network_mode=server.network_mode,
            port_bindings=server.port_bindings or None,
        )
        try:
            created = client.create_container(
                server.image,
                command=list(server.command),
                name=server.name,
                labels=dict(server.labels),
                environment=dict(server.environment),
                working_dir=server.working_dir,
                healthcheck=server.healthcheck.docker(),
                ports=[server.port] if server.publish is not None else None,
                host_config=host_config,
            )
        except DockerException as error:
            hint = (
                f"; `publish` needs an engine with a bridge network (this one answered: {error})"
                if server.publish is not None
                else f": {error}"
            )
            raise AirflowException(
                f"node {self.node.name!r}: {server.describe()}: the container could not be created{hint}"
            ) from error
        container_id = str(created["Id"])
        self._pending.append(container_id)
        try:
            client.start(container_id)
        except DockerException as error:
            self._remove(client, container_id, "it did not start")
            raise AirflowException(
                f"node {self.node.name!r}: {server.describe()}: the container did not start: {error}"
            ) from error
        if server.publish is not None:
            self._check_published(client, container_id, server)
        self.log.info(
            "Started %s as container %s (%s), waiting up to %g s until it is healthy on its 127.0.0.1:%s",
            server.describe(),
            server.name,
            container_id[:12],
            server.health_timeout_seconds,
            server.port,
        )
        return container_id

    def _check_published(self, client: docker.APIClient, container_id: str, server: EndpointServer) -> None:
        """An engine without a bridge network (`dockerd --bridge=none`) starts the container with
        loopback only and binds nothing, silently: say so instead of pretending the port is there."""
        ports = client.inspect_container(container_id)["NetworkSettings"].get("Ports") or {}
        if ports.get(f"{server.port}/tcp"):
            return
        self._remove(client, container_id, "its port could not be published")
        raise AirflowException(
            f"node {self.node.name!r}: {server.describe()}: `publish` asked for 127.0.0.1:{server.publish}, "
            "but the Docker engine bound no port: `publish` needs an engine with a bridge network, and this "
            "one has none (dockerd --bridge=none?). Remove `publish` from valohai-airflow.yaml (the endpoint "
            "is still reachable inside its container on 127.0.0.1) or use an engine with a network"
        )

    def _ensure_image(self, client: docker.APIClient, server: EndpointServer) -> None:
        try:
            client.inspect_image(server.image)
            return
        except ImageNotFound:
            pass
        try:
            client.pull(server.image)
        except DockerException as error:
            raise AirflowException(
                f"node {self.node.name!r}: {server.describe()}: image {server.image!r} is not on this Docker "
                f"engine and could not be pulled ({error}); build or load it on the worker, or fix the "
                "endpoint's `image:` in valohai.yaml. Nothing was started"
            ) from error

    def _wait_healthy(
        self, client: docker.APIClient, container_id: str, server: EndpointServer, replacing: bool
    ) -> None:
        deadline = time.monotonic() + server.health_timeout_seconds
        state: dict[str, Any] = {}
        while True:
            try:
                state = client.inspect_container(container_id)["State"]
            except NotFound as error:
                raise AirflowException(
                    f"node {self.node.name!r}: {server.describe()}: container {server.name} was removed by "
                    "someone else while it was starting"
                ) from error
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                self.log.info("%s is healthy: %s", server.describe(), health_output(state))
                return
            if state.get("Status") in ("exited", "dead"):
                problem = f"its server exited with code {state.get('ExitCode')} before it became healthy"
                break
            if time.monotonic() >= deadline:
                problem = (
                    f"it did not become healthy within {server.health_timeout_seconds:g} s "
                    "(health_timeout_seconds in valohai-airflow.yaml)"
                )
                break
            time.sleep(POLL_SECONDS)
        tail = self._log_tail(client, container_id)
        keeps = "the previous version keeps serving" if replacing else "nothing else was serving it"
        raise AirflowException(
            f"node {self.node.name!r}: {server.describe()} (container {server.name}): {problem}. "
            f"Last health check (GET 127.0.0.1:{server.port}{self._health_path()} inside the container): "
            f"{health_output(state)}. The new container was removed; {keeps}. Server log:\n{tail}"
        )

    def _health_path(self) -> str:
        return self.serving.health_path if self.serving is not None else "/"

    def _log_tail(self, client: docker.APIClient, container_id: str) -> str:
        try:
            raw = client.logs(container_id, stdout=True, stderr=True, tail=LOG_TAIL_LINES)
        except DockerException as error:
            return f"(no log: {error})"
        text = raw.decode(errors="replace").rstrip() if isinstance(raw, bytes) else ""
        return text or "(the server printed nothing)"

    def _remove(self, client: docker.APIClient, container_id: str, why: str) -> None:
        self.log.info("Removing serving container %s (%s)", container_id[:12], why)
        try:
            client.remove_container(container_id, force=True)
        except DockerException as error:
            self.log.info("Container %s already gone: %s", container_id[:12], error)

    def on_kill(self) -> None:
        """A killed task removes the containers it started and that are not serving yet."""
        if not self._pending:
            return
        client = self._client()
        for container_id in self._pending:
            self._remove(client, container_id, "the task was killed before it was healthy")
