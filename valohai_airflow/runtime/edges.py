"""Edges at run time: what the upstream manifests of THIS run give one node.

- `output.<glob>` → input: the upstream's output files whose path (relative to its outputs dir)
  matches the glob (`runtime.globs` semantics).
- `input.<glob>` → input: the upstream's input files of every input whose NAME matches the glob
  (`evaluate.input.model*` takes all files of the input `model`), as in Valohai's Three-Trainings.
- `parameter.<p>` → parameter: the upstream's resolved value of p.
- `metadata.<key>` → parameter: the last value the upstream printed for key.
- `environment-variable.<X>` → environment-variable: the upstream's value of X.
- `deployment.id` / `deployment.version_id` → parameter: what the deployment node published.
- `dependency`: ordering only; `file` edges are read by the deployment node (`runtime.deployment`).

Several edges into one input add up. Files are placed under their own basename; when two edges
bring the same name, the first (in edge order) keeps it and every later one is renamed to
`<source node>-<name>`, which is logged. Valohai picks one at random there; we keep them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from valohai_airflow.plan.model import EdgeKind, EdgePlan, NodePlan, PipelinePlan
from valohai_airflow.runtime.globs import compile_glob
from valohai_airflow.runtime.manifest import Manifest, ManifestFile
from valohai_airflow.spec.diagnostics import ValohaiAirflowError


class EdgeResolutionError(ValohaiAirflowError):
    """An edge that cannot deliver: its upstream manifest or the key it reads is missing."""


@dataclass(frozen=True, slots=True)
class EdgeFile:
    """One file an edge brings into an input: where it comes from and the name it gets."""

    name: str
    uri: str
    size: int | None
    sha256: str | None
    source_node: str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EdgeValues:
    inputs: dict[str, list[EdgeFile]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def _describe(edge: EdgePlan) -> str:
    return (
        f"{edge.source_node}.{edge.source_kind.value}.{edge.source_key} → "
        f"{edge.target_node}.{edge.target_kind.value}.{edge.target_key}"
    )


def _selected_files(edge: EdgePlan, manifest: Manifest) -> list[ManifestFile]:
    glob = compile_glob(edge.source_key)
    if edge.source_kind is EdgeKind.OUTPUT:
        return [f for f in manifest.outputs if glob.matches(f.path)]
    return [f for name, files in sorted(manifest.inputs.items()) if glob.matches(name) for f in files]


def _add_file(
    values: EdgeValues, taken: set[str], input_name: str, file: ManifestFile, edge: EdgePlan
) -> None:
    """`taken` holds the names already placed in this input (kept by the caller, so adding n
    files stays linear instead of rebuilding the set per file)."""
    if file.uri is None:
        raise EdgeResolutionError(f"{_describe(edge)}: upstream file {file.path!r} has no stored copy")
    placed = values.inputs.setdefault(input_name, [])
    name = file.path.rpartition("/")[2]  # posixpath.basename, without its per-call overhead
    if name in taken:
        renamed = f"{edge.source_node}-{name}"
        values.log.append(f"input {input_name!r}: {name!r} from {edge.source_node} arrives as {renamed!r}")
        name = renamed
    taken.add(name)
    placed.append(EdgeFile(name, file.uri, file.size, file.sha256, edge.source_node, dict(file.properties)))


def resolve_edges(pipeline: PipelinePlan, node: NodePlan, upstream: Mapping[str, Manifest]) -> EdgeValues:
    """`upstream` maps node names to the manifests their tasks returned in this run."""
    values = EdgeValues()
    taken: dict[str, set[str]] = {}  # input name → file names placed so far
    for edge in pipeline.edges_into(node.name):
        if edge.target_kind in (EdgeKind.DEPENDENCY, EdgeKind.FILE):
            continue
        manifest = upstream.get(edge.source_node)
        if manifest is None and pipeline.node(edge.source_node).on_error == "continue":
            values.log.append(f"{_describe(edge)}: nothing ({edge.source_node!r} failed; on-error: continue)")
            continue
        if manifest is None:
            raise EdgeResolutionError(
                f"{_describe(edge)}: no manifest from {edge.source_node!r} in this run "
                "(did the upstream task run and succeed? clear it to run it again)"
            )
        if edge.target_kind is EdgeKind.INPUT:
            files = _selected_files(edge, manifest)
            values.log.append(f"{_describe(edge)}: {len(files)} file(s)")
            names = taken.setdefault(edge.target_key, set())
            for file in files:
                _add_file(values, names, edge.target_key, file, edge)
        elif edge.source_kind is EdgeKind.PARAMETER:
            if edge.source_key not in manifest.parameters:
                raise EdgeResolutionError(
                    f"{_describe(edge)}: {edge.source_node!r} has no parameter {edge.source_key!r}"
                )
            values.parameters[edge.target_key] = manifest.parameters[edge.source_key]
        elif edge.source_kind is EdgeKind.METADATA:
            if edge.source_key not in manifest.metadata:
                known = ", ".join(sorted(manifest.metadata)) or "none"
                raise EdgeResolutionError(
                    f"{_describe(edge)}: {edge.source_node!r} printed no metadata key {edge.source_key!r} "
                    f"(keys printed: {known})"
                )
            values.parameters[edge.target_key] = manifest.metadata[edge.source_key]
        elif edge.source_kind is EdgeKind.ENVIRONMENT_VARIABLE:
            if edge.source_key not in manifest.environment:
                raise EdgeResolutionError(
                    f"{_describe(edge)}: {edge.source_node!r} has no environment variable {edge.source_key!r}"
                )
            values.environment[edge.target_key] = manifest.environment[edge.source_key]
        elif edge.source_kind is EdgeKind.DEPLOYMENT:
            if edge.source_key not in manifest.deployment:
                raise EdgeResolutionError(
                    f"{_describe(edge)}: {edge.source_node!r} published no deployment {edge.source_key!r}"
                )
            values.parameters[edge.target_key] = manifest.deployment[edge.source_key]
    return values


def edge_for_parameter(pipeline: PipelinePlan, node: NodePlan, parameter: str) -> str | None:
    """The edge that fills a parameter, for error messages."""
    for edge in pipeline.edges_into(node.name):
        if edge.target_kind is EdgeKind.PARAMETER and edge.target_key == parameter:
            return _describe(edge)
    return None
