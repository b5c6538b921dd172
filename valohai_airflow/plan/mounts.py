"""A step's `mounts`: host folders bound into its container, only where valohai-airflow.yaml allows.

On Valohai, mounts are for private workers whose operator knows the hosts. Here a mount hands the
step's code a folder of the worker, so `mounts.allow` of valohai-airflow.yaml lists the host folders
(prefixes) that may be mounted; there is no default. A source is resolved (symlinks followed, `..`
folded) before it is compared, so neither escapes the allowed folder. What is allowed becomes a bind
mount of the node's container, read-only when `readonly: true`; anything else is a warning at the
mount's line and no mount: a source outside the list, a `type` other than a host folder (nfs and
friends need options Docker would apply with the worker's privileges), a destination inside
/valohai (it would hide the execution's own files). At run time (`checked_mounts`) each source is
resolved again on the worker, so a symlink changed since compile time cannot widen the list.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.spec.config import Config
from valohai_airflow.spec.diagnostics import Diagnostics
from valohai_airflow.spec.pickling import pickled_by_fields
from valohai_airflow.spec.pipeline import DeploymentNode
from valohai_airflow.spec.sidecar import SIDECAR_NAME, ProjectSettings
from valohai_airflow.spec.step import Mount, Step

_BIND_TYPES = (None, "bind")
_RESERVED = "/valohai"


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class BindMount:
    """An allowed mount: the source as written, the allow-list entry that admits it, where it goes."""

    source: str
    destination: str
    readonly: bool
    allowed_by: str


class MountError(ValohaiAirflowError):
    """An allowed mount that cannot be made on this worker (missing, or now outside the list)."""


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _admitted(source: str, allow: Sequence[str]) -> str | None:
    """The allow-list entry whose resolved folder holds the resolved source, if any."""
    real = os.path.realpath(source)
    return next((root for root in allow if _within(real, os.path.realpath(root))), None)


def decide(mount: Mount, allow: Sequence[str]) -> BindMount | str:
    """The bind mount, or why it is not mounted (the warning's text)."""
    if mount.type not in _BIND_TYPES:
        return f"type {mount.type!r} is not mounted: only host folders (bind mounts) are"
    if _within(os.path.normpath(mount.destination), _RESERVED):
        return f"destination {mount.destination!r} is inside {_RESERVED}, where it would hide the execution's own files"
    if not mount.source.startswith("/"):
        return f"source {mount.source!r} is not an absolute host path"
    root = _admitted(mount.source, allow)
    if root is None:
        allowed = ", ".join(repr(a) for a in allow) if allow else "none"
        return f"host path {mount.source!r} is outside `mounts.allow` of {SIDECAR_NAME} (allowed: {allowed})"
    return BindMount(mount.source, mount.destination, mount.readonly, root)


def mounts_for(step: Step, settings: ProjectSettings) -> tuple[BindMount, ...]:
    """The step's mounts that are made."""
    decided = (decide(m, settings.mounts.allow) for m in step.mounts)
    return tuple(d for d in decided if isinstance(d, BindMount))


def warn_mounts(config: Config, settings: ProjectSettings, diagnostics: Diagnostics) -> None:
    """A warning at each mount of a step or a node override that is not made, once per mount."""
    places = [(f"step {step.name!r}", step.mounts) for step in config.steps.values()]
    places += [
        (f"pipeline {pipeline.name!r}, node {node.name!r} override", node.override.mounts)
        for pipeline in config.pipelines.values()
        for node in pipeline.nodes
        if not isinstance(node, DeploymentNode) and node.override is not None
    ]
    for label, mounts in places:
        for mount in mounts:
            decided = decide(mount, settings.mounts.allow)
            where = f"{label}, mount {mount.source}:{mount.destination}"
            if isinstance(decided, str):
                diagnostics.warning(
                    f"{where}: {decided}, so the container runs without it",
                    mount.location,
                    f"add the host folder to `mounts: {{allow: [...]}}` in {SIDECAR_NAME} to mount it",
                )
            elif mount.options:
                diagnostics.warning(
                    f"{where}: `options` are not applied; it is a plain bind mount"
                    + (" (read-only)" if mount.readonly else ""),
                    mount.location,
                )


def checked_mounts(node: str, mounts: Sequence[BindMount]) -> list[tuple[str, str, bool]]:
    """(host path, container path, read only) of each mount, checked again on this worker."""
    result = []
    for mount in mounts:
        if _admitted(mount.source, [mount.allowed_by]) is None:
            raise MountError(
                f"node {node!r}: mount source {mount.source!r} now resolves to {os.path.realpath(mount.source)!r}, "
                f"outside {mount.allowed_by!r} of `mounts.allow` in {SIDECAR_NAME}; the container was not started"
            )
        if not os.path.isdir(mount.source) and not os.path.isfile(mount.source):
            raise MountError(
                f"node {node!r}: mount source {mount.source!r} does not exist on this worker; "
                "create it or fix `mounts` of the step; the container was not started"
            )
        result.append((os.path.realpath(mount.source), mount.destination, mount.readonly))
    return result
