"""The whole valohai.yaml file as typed objects, keyed by name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from valohai_airflow.spec.deployment_defaults import Deployment
from valohai_airflow.spec.endpoint import Endpoint
from valohai_airflow.spec.pipeline import Pipeline
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task


class Config(BaseModel):
    """Everything defined in one file; ``source`` is the file name used in diagnostics."""

    model_config = ConfigDict(frozen=True)

    steps: dict[str, Step] = {}
    pipelines: dict[str, Pipeline] = {}
    endpoints: dict[str, Endpoint] = {}
    tasks: dict[str, Task] = {}
    deployments: dict[str, Deployment] = {}
    source: str = "<memory>"
