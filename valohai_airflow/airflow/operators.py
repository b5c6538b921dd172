"""The operator that runs one Valohai execution node: a thin DockerOperator subclass.

Everything it decides (parameter values, the command) comes from the Airflow-free layers; the
operator only maps them onto Docker and makes sure no container outlives its task.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from docker.errors import APIError

from valohai_airflow.plan.model import NodePlan, PipelinePlan
from valohai_airflow.runtime.parameters import resolve_parameters
from valohai_airflow.spec.commands import build_script

LABEL = "valohai-airflow"


def script_command(script: str) -> list[str]:
    """Valohai's rule: the commands form one script whose exit status is the last command's.

    A leading `#!` line picks the interpreter; otherwise `/bin/sh` runs it.
    """
    if script.startswith("#!"):
        first, _, body = script.partition("\n")
        return [*shlex.split(first[2:].strip()), "-c", body]
    return ["/bin/sh", "-c", script]


class ValohaiExecutionOperator(DockerOperator):
    """Runs a pipeline node's step in its image. Nothing of the user's reaches Jinja."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    ui_color = "#7bdcb5"

    def __init__(
        self,
        *,
        pipeline: PipelinePlan,
        node: NodePlan,
        dag_key: str,
        docker_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        assert node.step is not None, "execution nodes always have a step"
        step = node.step
        if step.time_limit_seconds and "execution_timeout" not in kwargs:
            kwargs["execution_timeout"] = timedelta(seconds=step.time_limit_seconds)
        super().__init__(
            task_id=node.task_id,
            task_display_name=node.name,
            image=step.image,
            command=None,
            docker_url=docker_url,
            auto_remove="force",
            mount_tmp_dir=False,
            network_mode="none",
            labels={LABEL: "1", f"{LABEL}.dag": dag_key, f"{LABEL}.node": node.task_id},
            **kwargs,
        )
        self.pipeline = pipeline
        self.node = node

    def execute(self, context: Any) -> dict[str, Any]:
        step = self.node.step
        assert step is not None
        values = resolve_parameters(self.pipeline, self.node, context["params"])
        script = build_script(step, values)
        self.command = script_command(script)
        ti = context["ti"]
        self.container_name = (
            f"vh-{self.node.task_id[:40]}-{ti.map_index if ti.map_index >= 0 else 0}-{ti.try_number}-"
            f"{uuid.uuid4().hex[:8]}"
        )
        started = time.time()
        super().execute(context)
        return {
            "node": self.node.name,
            "step": step.name,
            "image": step.image,
            "command": script,
            "exit_code": 0,
            "started": started,
            "finished": time.time(),
            "parameters": values,
        }

    def on_kill(self) -> None:
        """Kill, then force-remove: Docker's 10 s stop grace outlives the supervisor's 5 s SIGKILL."""
        if self.container is None or not self.hook.client_created:
            return
        container_id = self.container["Id"]
        self.log.info("Killing container %s", container_id[:12])
        try:
            self.cli.remove_container(container_id, force=True)
        except APIError as error:
            self.log.info("Container %s already gone: %s", container_id[:12], error)


class FailWithMessageOperator(BaseOperator):
    """A task that fails with a fixed, user-facing message (a broken valohai.yaml, an unsupported node)."""

    ui_color = "#f4a6a6"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowException(self.message)
