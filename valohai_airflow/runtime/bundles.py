"""Deployment nodes without Airflow: publish a versioned endpoint bundle to the store.

Valohai builds a deployment version from the endpoints a deployment node names and the files its
`file` edges bring (`[train.output.model.pb, deploy.file.predict-digit.model]` gives the file
`model` of endpoint `predict-digit`). Here that version is a bundle in the artefact store:

    deployments/<deployment>/<version>/endpoints.json            the endpoint definitions, as in valohai.yaml
    deployments/<deployment>/<version>/endpoints/<endpoint>/<path>  each endpoint file, at its `path`
    deployments/<deployment>/<version>/bundle.json               the bundle manifest, written last
    deployments/<deployment>/latest.json, aliases/<alias>.json   pointers to the newest version

`bundle.json` names every endpoint's image (with the engine's image id when the worker knows it),
every file with its sha256 and source node, and the run that published it; a reader that finds it
knows the rest of the version is complete. The version id is `<UTC yyyymmdd.HHMMSS>-<execution id
prefix>`: it sorts by time and a retry (a new execution id) never overwrites an earlier version.

The node's XCom is a manifest whose `deployment` holds `id` (the deployment's store segment, so
`deployments/<id>/<version_id>/` locates the bundle) and `version_id`, which `deployment` edges
(`[deploy.deployment.version_id, check.parameter.version]`) hand to downstream parameters.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import EdgeKind, NodePlan, PipelinePlan
from valohai_airflow.runtime.edge_resolution import selected_files
from valohai_airflow.runtime.ids import ExecutionKey, safe_segment
from valohai_airflow.runtime.manifest import Manifest, ManifestFile, load_upstream
from valohai_airflow.runtime.outputs import sha256_file
from valohai_airflow.spec.endpoint import Endpoint
from valohai_airflow.store.base import ArtifactStore, InvalidKeyError, join_key, normalize_key
from valohai_airflow.store.resolver import StoreResolver

BUNDLE_SCHEMA_VERSION = 1
ROOT = "deployments"


class DeploymentError(ValohaiAirflowError):
    """A deployment node that cannot publish: a missing or ambiguous file, a bad endpoint file path."""


@dataclass(frozen=True, slots=True)
class EndpointFileSource:
    """The upstream file an edge brings into one endpoint file."""

    endpoint: str
    name: str  # the endpoint file's name in valohai.yaml
    path: str  # where the endpoint expects it (its `path`), relative to the bundle's endpoint folder
    file: ManifestFile
    source_node: str
    edge: str


@dataclass(frozen=True)
class DeploymentRequest:
    key: ExecutionKey
    project_name: str
    pipeline: PipelinePlan
    node: NodePlan
    upstream: Mapping[str, Any]  # node name → the XCom value its task returned in this run
    stores: StoreResolver  # the artefact store, and upstream files elsewhere with its credentials
    image_ids: Mapping[str, str | None] = field(default_factory=dict)  # image → engine id, if known
    now: datetime | None = None  # the publish time (tests pin it)

    @property
    def store(self) -> ArtifactStore:
        return self.stores.store


def version_id(key: ExecutionKey, now: datetime) -> str:
    """Sorts by publish time; the execution id part keeps two publishes in one second apart."""
    return f"{now.astimezone(UTC):%Y%m%d.%H%M%S}-{key.execution_id[:8]}"


def bundle_prefix(deployment: str, version: str) -> str:
    return join_key(ROOT, safe_segment(deployment), version)


def _endpoint_file_path(endpoint: Endpoint, name: str) -> str:
    spec = next(f for f in endpoint.files if f.name == name)
    try:
        return normalize_key(spec.path.lstrip("/"))
    except InvalidKeyError as error:
        raise DeploymentError(
            f"endpoint {endpoint.name!r}: file {name!r} has path {spec.path!r}, which cannot be placed "
            f"in a bundle ({error}); use a relative path without '..'"
        ) from error


def endpoint_files(node: NodePlan, upstream: Mapping[str, Sequence[Manifest]]) -> list[EndpointFileSource]:
    """One upstream file per endpoint file, in the node's endpoint order; every endpoint file needs
    exactly one (zero or several matches are errors, since an endpoint loads one file per name)."""
    specs = {e.name: e for e in node.endpoint_specs}
    edges = {e.target_key: e for e in node.sources.edges if e.target_kind is EdgeKind.FILE}
    found: list[EndpointFileSource] = []
    for endpoint_name in node.endpoints:
        endpoint = specs.get(endpoint_name)
        if endpoint is None:
            raise DeploymentError(
                f"node {node.name!r}: endpoint {endpoint_name!r} is not defined in valohai.yaml"
            )
        for spec in endpoint.files:
            edge = edges.get(f"{endpoint_name}.{spec.name}")
            if edge is None:
                raise DeploymentError(
                    f"node {node.name!r}: endpoint {endpoint_name!r} needs its file {spec.name!r}, but no edge "
                    f"brings it; add e.g. `[train.output.<file>, {node.name}.file.{endpoint_name}.{spec.name}]`"
                )
            manifests = upstream.get(edge.source_node)
            if not manifests:
                raise DeploymentError(
                    f"{edge.text}: no manifest from {edge.source_node!r} in this run "
                    "(did the upstream task run and succeed? clear it to run it again)"
                )
            matches = [f for manifest in manifests for f in selected_files(edge, manifest)]
            if len(matches) != 1:
                listed = ", ".join(f.path for f in matches[:10]) or "none"
                raise DeploymentError(
                    f"{edge.text}: an endpoint file takes exactly one file, the edge matched "
                    f"{len(matches)} ({listed}); make its pattern match one file"
                )
            if matches[0].uri is None:
                raise DeploymentError(f"{edge.text}: upstream file {matches[0].path!r} has no stored copy")
            found.append(
                EndpointFileSource(
                    endpoint=endpoint_name,
                    name=spec.name,
                    path=_endpoint_file_path(endpoint, spec.name),
                    file=matches[0],
                    source_node=edge.source_node,
                    edge=edge.text,
                )
            )
    return found


def endpoint_definition(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint as valohai.yaml spells it (`server-command`, not `server_command`)."""
    return endpoint.model_dump(mode="json", by_alias=True, exclude_none=True)


def publish(request: DeploymentRequest) -> dict[str, Any]:
    """Copy the files, write the definitions and the bundle manifest, move the pointers; returns the
    node's XCom value. Nothing is written before every file is known to exist."""
    node = request.node
    if node.deployment is None:
        raise DeploymentError(f"node {node.name!r} names no deployment")
    started = datetime.now(UTC)
    now = request.now or started
    upstream = load_upstream(request.upstream, request.stores)
    sources = endpoint_files(node, upstream)
    version = version_id(request.key, now)
    prefix = bundle_prefix(node.deployment, version)
    deployment_id = safe_segment(node.deployment)
    stored: dict[str, list[ManifestFile]] = {}
    files_by_endpoint: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="valohai-deploy-") as tmp:
        for index, source in enumerate(sources):
            local = request.stores.get_file(source.file.uri or "", Path(tmp) / str(index))
            sha256 = sha256_file(local)
            if source.file.sha256 and source.file.sha256 != sha256:
                raise DeploymentError(
                    f"{source.edge}: {source.file.uri} changed since {source.source_node} stored it "
                    f"(sha256 {sha256[:12]}…, the manifest says {source.file.sha256[:12]}…)"
                )
            put = request.store.put_file(local, join_key(prefix, "endpoints", source.endpoint, source.path))
            entry = ManifestFile(path=source.path, uri=put.uri, size=put.size, sha256=sha256)
            stored.setdefault(f"{source.endpoint}.{source.name}", []).append(entry)
            files_by_endpoint.setdefault(source.endpoint, []).append(
                {
                    "name": source.name,
                    "path": source.path,
                    "uri": put.uri,
                    "size": put.size,
                    "sha256": sha256,
                    "source": {"node": source.source_node, "path": source.file.path, "uri": source.file.uri},
                }
            )
    specs = {e.name: e for e in node.endpoint_specs}
    definitions = {name: endpoint_definition(specs[name]) for name in node.endpoints}
    endpoints_uri = request.store.put_json(definitions, join_key(prefix, "endpoints.json")).uri
    bundle = {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "deployment": node.deployment,
        "id": deployment_id,
        "version_id": version,
        "created_at": now.isoformat(),
        "aliases": list(node.aliases),
        "project": request.project_name,
        "pipeline": request.pipeline.name,
        "node": node.name,
        "dag_id": request.key.dag_id,
        "run_id": request.key.run_id,
        "execution_id": request.key.execution_id,
        "endpoints_uri": endpoints_uri,
        "endpoints": {
            name: {
                "image": specs[name].image,
                "image_id": request.image_ids.get(specs[name].image),
                "files": files_by_endpoint.get(name, []),
            }
            for name in node.endpoints
        },
    }
    bundle_uri = request.store.put_json(bundle, join_key(prefix, "bundle.json")).uri
    pointer = {"id": deployment_id, "version_id": version, "bundle_uri": bundle_uri}
    request.store.put_json(pointer, join_key(ROOT, deployment_id, "latest.json"))
    for alias in node.aliases:
        request.store.put_json(
            pointer, join_key(ROOT, deployment_id, "aliases", f"{safe_segment(alias)}.json")
        )
    manifest = Manifest(
        execution_id=request.key.execution_id,
        node=node.name,
        step="",
        image="",
        status="completed",
        started_at=started,
        finished_at=datetime.now(UTC),
        inputs=stored,
        outputs_prefix_uri=request.store.uri(prefix),
        deployment={
            "id": deployment_id,
            "version_id": version,
            "name": node.deployment,
            "bundle_uri": bundle_uri,
        },
    )
    return manifest.model_dump(mode="json")
