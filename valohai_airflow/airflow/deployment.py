"""The deployment node's task: publishes the endpoint bundle (`runtime.bundles`) and, when the
sidecar says `deployments: {<name>: {serve: true}}`, serves it (`runtime.rollout`, blue/green).

It gathers what the runtime needs from Airflow (the upstream manifests of this run, the store) and
asks the container engine for the endpoint images' ids, which the bundle records when the worker has
the image; an engine that cannot answer leaves them unknown instead of failing. The serving
containers outlive the task on purpose: they are the deployment.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from valohai_airflow.airflow.operators import LABEL, upstream_values
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.engine.docker import DockerEngine
from valohai_airflow.engine.interface import ContainerEngine, EngineError
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.runtime.bundles import DeploymentRequest, publish
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.rollout import Rollout
from valohai_airflow.runtime.serving import ServingRequest, prepare_servers, version_dir
from valohai_airflow.spec.sidecar import DeploymentSettings

SERVING_XCOM_KEY = "valohai_serving"
SERVING_DIR = "deployments"  # below [valohai] work_dir; dag ids always hold "__", so no clash


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
        network: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=node.task_id, task_display_name=node.name, **kwargs)
        self.project_name = project_name
        self.pipeline = pipeline
        self.node = node
        self.docker_url = docker_url
        self.project_root = project_root
        self.serving = serving
        self.network = network  # the servers' Docker network; None: the engine's default
        self._rollout: Rollout | None = None  # while serving: on_kill removes its unhealthy containers

    def _engine(self) -> ContainerEngine:
        return DockerEngine(self.docker_url)

    def _image_ids(self) -> dict[str, str | None]:
        images = sorted({e.image for e in self.node.endpoint_specs})
        ids: dict[str, str | None] = dict.fromkeys(images)
        engine = self._engine()
        try:
            for image in images:
                ids[image] = engine.image_id(image)
                if ids[image] is None:
                    self.log.info("Image %s is not on this Docker engine: its id stays unknown", image)
        except EngineError as error:
            self.log.info("No Docker engine to ask for image ids (%s)", error)
        finally:
            engine.close()
        return ids

    def execute(self, context: Any) -> dict[str, Any]:
        settings = valohai_settings()
        ti = context["ti"]
        request = DeploymentRequest(
            key=ExecutionKey(self.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number),
            project_name=self.project_name,
            pipeline=self.pipeline,
            node=self.node,
            upstream=upstream_values(context, self, self.pipeline, self.node),
            stores=settings.stores,
            image_ids=self._image_ids(),
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
            network=self.network,
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
        engine = self._engine()
        self._rollout = Rollout(
            engine, self.node.name, LABEL, base_dir, self.serving.health_path, log=self.log
        )
        try:
            started = self._rollout.run(self.project_name, str(deployment["id"]), servers)
        except ValohaiAirflowError as error:
            raise self._error(error) from error
        finally:
            engine.close()
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

    def on_kill(self) -> None:
        """A killed task removes the containers it started and that are not serving yet."""
        if self._rollout is not None:
            self._rollout.abort()
