"""The deployment node's task: publishes the endpoint bundle (`runtime.deployment`), runs no container.

It only gathers what the runtime needs from Airflow (the upstream manifests of this run, the
store) and asks the Docker engine for the endpoint images' ids, which the bundle records when the
worker has the image; an engine that cannot answer leaves them unknown instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import docker
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from docker.errors import DockerException

from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.plan.model import EdgeKind, NodePlan, PipelinePlan
from valohai_airflow.runtime.deployment import DeploymentRequest, publish
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.spec.diagnostics import ValohaiAirflowError
from valohai_airflow.store import open_store


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
        **kwargs: Any,
    ) -> None:
        super().__init__(task_id=node.task_id, task_display_name=node.name, **kwargs)
        self.project_name = project_name
        self.pipeline = pipeline
        self.node = node
        self.docker_url = docker_url

    def _image_ids(self) -> dict[str, str | None]:
        images = sorted({e.image for e in self.node.endpoint_specs})
        ids: dict[str, str | None] = dict.fromkeys(images)
        try:
            client = docker.APIClient(base_url=self.docker_url) if self.docker_url else docker.from_env().api
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
        sources = sorted(
            {
                e.source_node
                for e in self.pipeline.edges_into(self.node.name)
                if e.target_kind is EdgeKind.FILE
            }
        )
        request = DeploymentRequest(
            key=ExecutionKey(self.dag_id, ti.run_id, self.node.task_id, ti.map_index, ti.try_number),
            project_name=self.project_name,
            pipeline=self.pipeline,
            node=self.node,
            upstream={name: ti.xcom_pull(task_ids=self.pipeline.node(name).task_id) for name in sources},
            store=open_store(settings.store_url, **settings.s3_options),
            image_ids=self._image_ids(),
            s3_options=settings.s3_options,
        )
        try:
            result = publish(request)
        except ValohaiAirflowError as error:
            text = str(error)
            raise AirflowException(
                text if text.startswith("node ") else f"node {self.node.name!r}: {text}"
            ) from error
        deployment = result["deployment"]
        self.log.info(
            "Published deployment %s version %s: %s",
            deployment["name"],
            deployment["version_id"],
            deployment["bundle_uri"],
        )
        return result
