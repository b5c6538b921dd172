"""Deployment defaults (``- deployment:`` items), used to auto-create deployments."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict

from valohai_airflow.spec._base import SpecModel, Str


class DeploymentDefaults(SpecModel):
    """Values used when the deployment does not exist yet; free-form apart from ``target``."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str] = "deployment defaults"

    target: Str


class Deployment(SpecModel):
    """One ``- deployment:`` item."""

    kind: ClassVar[str] = "deployment"

    name: Str
    defaults: DeploymentDefaults | None = None
