"""Deployment endpoints (``- endpoint:`` items)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from valohai_airflow.spec._base import Bool, Int, Number, SpecModel, Str, StrOrStrList, spec_error
from valohai_airflow.spec.paths import relative_path_problem
from valohai_airflow.spec.step import ResourceRange, StepResources


class EndpointFile(SpecModel):
    """A file (e.g. a model) loaded into the endpoint's image at `path`, below the code's folder."""

    kind: ClassVar[str] = "file"

    name: Str
    path: Str
    description: Str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = relative_path_problem(value)
        if problem:
            raise spec_error(
                "endpoint_file_path",
                "{value!r} {problem} (the endpoint's code folder)",
                {"value": value, "problem": problem},
            )
        return value


class IntRange(SpecModel):
    """min/max in whole units (ephemeral storage MB)."""

    kind: ClassVar[str] = "resource"

    min: Int | None = None
    max: Int | None = None


class EndpointResources(StepResources):
    """Endpoint resources: the step ones plus ephemeral storage."""

    ephemeral_storage: IntRange | None = Field(default=None, alias="ephemeral-storage")


class Toleration(SpecModel):
    """A Kubernetes toleration."""

    kind: ClassVar[str] = "toleration"

    key: Str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: Str | None = None
    effect: Literal["PreferNoSchedule", "NoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _key_or_exists(self) -> Toleration:
        if self.key is None and self.operator != "Exists":
            raise spec_error("toleration", "a toleration needs a 'key' unless operator is 'Exists'", {})
        return self


class SharedVolume(SpecModel):
    """An existing PVC mounted into the endpoint."""

    kind: ClassVar[str] = "shared volume"

    pvc_name: Str = Field(alias="pvc-name")
    mount_path: Str = Field(alias="mount-path")
    sub_path: Str | None = Field(default=None, alias="sub-path")
    read_only: Bool = Field(default=False, alias="read-only")


class WorkspaceVolume(SpecModel):
    """A per-replica volume."""

    kind: ClassVar[str] = "workspace volume"

    mount_path: Str = Field(alias="mount-path")
    size: Annotated[int, Field(strict=True, ge=1)]
    storage_class_name: Str | None = Field(default=None, alias="storage-class-name")


class Endpoint(SpecModel):
    """One ``- endpoint:`` item: a real-time HTTP deployment (server-command or wsgi)."""

    kind: ClassVar[str] = "endpoint"

    name: Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9-]+$")]
    image: Str
    description: Str | None = None
    server_command: StrOrStrList | None = Field(default=None, alias="server-command")
    wsgi: Str | None = None
    port: Annotated[Number, Field(ge=1025, le=65535)] | None = None
    files: tuple[EndpointFile, ...] = ()
    node_selector: Annotated[str, StringConstraints(strict=True, pattern="=")] | None = Field(
        default=None, alias="node-selector"
    )
    resources: EndpointResources | None = None
    tolerations: tuple[Toleration, ...] = ()
    shared_volumes: tuple[SharedVolume, ...] = Field(default=(), alias="shared-volumes")
    workspace_volume: WorkspaceVolume | None = Field(default=None, alias="workspace-volume")

    @model_validator(mode="after")
    def _server_or_wsgi(self) -> Endpoint:
        if (self.server_command is None) == (self.wsgi is None):
            raise spec_error(
                "endpoint",
                "endpoint {name!r} needs exactly one of 'server-command' or 'wsgi'",
                {"name": self.name},
            )
        return self


__all__ = [
    "Endpoint",
    "EndpointFile",
    "EndpointResources",
    "IntRange",
    "ResourceRange",
    "SharedVolume",
    "Toleration",
    "WorkspaceVolume",
]
