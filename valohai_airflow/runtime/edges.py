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

A task node upstream has one manifest per execution that succeeded, in map-index order: file edges
bring the files of all of them, value edges a list of their values (which spreads over a task node
downstream, one execution per upstream execution).

Several edges into one input add up. Files are placed under their own basename; when two edges
(or two executions of a task node) bring the same name, the first (in edge, then map-index order)
keeps it and every later one is renamed to `<source>-<name>`, where the source is the node, or
`<node>-<map index>` for a task node's execution; the log says so. Valohai picks one at random
there; we keep them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from valohai_airflow.plan.model import EdgeKind, EdgePlan, NodeKind, NodePlan, PipelinePlan
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


def selected_files(edge: EdgePlan, manifest: Manifest) -> list[ManifestFile]:
    """The files of one upstream manifest that a file edge's glob picks."""
    glob = compile_glob(edge.source_key)
    if edge.source_kind is EdgeKind.OUTPUT:
        return [f for f in manifest.outputs if glob.matches(f.path)]
    return [f for name, files in sorted(manifest.inputs.items()) if glob.matches(name) for f in files]


def _source(manifest: Manifest) -> str:
    return manifest.node if manifest.map_index < 0 else f"{manifest.node}-{manifest.map_index}"


def _add_file(
    values: EdgeValues, taken: set[str], input_name: str, file: ManifestFile, edge: EdgePlan, source: str
) -> None:
    """`taken` holds the names already placed in this input (kept by the caller, so adding n
    files stays linear instead of rebuilding the set per file)."""
    if file.uri is None:
        raise EdgeResolutionError(f"{_describe(edge)}: upstream file {file.path!r} has no stored copy")
    placed = values.inputs.setdefault(input_name, [])
    name = file.path.rpartition("/")[2]  # posixpath.basename, without its per-call overhead
    if name in taken:
        renamed = f"{source}-{name}"
        values.log.append(f"input {input_name!r}: {name!r} from {source} arrives as {renamed!r}")
        name = renamed
    taken.add(name)
    placed.append(EdgeFile(name, file.uri, file.size, file.sha256, edge.source_node, dict(file.properties)))


def _value(edge: EdgePlan, manifest: Manifest) -> Any:
    """The value a parameter, metadata, environment-variable or deployment edge reads from one manifest."""
    kind, key = edge.source_kind, edge.source_key
    if kind is EdgeKind.PARAMETER:
        if key not in manifest.parameters:
            raise EdgeResolutionError(f"{_describe(edge)}: {_source(manifest)!r} has no parameter {key!r}")
        return manifest.parameters[key]
    if kind is EdgeKind.METADATA:
        if key not in manifest.metadata:
            known = ", ".join(sorted(manifest.metadata)) or "none"
            raise EdgeResolutionError(
                f"{_describe(edge)}: {_source(manifest)!r} printed no metadata key {key!r} (keys printed: {known})"
            )
        return manifest.metadata[key]
    if kind is EdgeKind.ENVIRONMENT_VARIABLE:
        if key not in manifest.environment:
            raise EdgeResolutionError(
                f"{_describe(edge)}: {_source(manifest)!r} has no environment variable {key!r}"
            )
        return manifest.environment[key]
    if key not in manifest.deployment:
        raise EdgeResolutionError(f"{_describe(edge)}: {_source(manifest)!r} published no deployment {key!r}")
    return manifest.deployment[key]


def resolve_edges(
    pipeline: PipelinePlan, node: NodePlan, upstream: Mapping[str, Sequence[Manifest]]
) -> EdgeValues:
    """`upstream` maps node names to the manifests their tasks returned in this run: one for an
    execution node, one per succeeded execution (in map-index order) for a task node."""
    values = EdgeValues()
    taken: dict[str, set[str]] = {}  # input name → file names placed so far
    for edge in pipeline.edges_into(node.name):
        if edge.target_kind in (EdgeKind.DEPENDENCY, EdgeKind.FILE):
            continue
        source = pipeline.node(edge.source_node)
        manifests = upstream.get(edge.source_node)
        if not manifests and source.on_error == "continue":
            values.log.append(f"{_describe(edge)}: nothing ({edge.source_node!r} failed; on-error: continue)")
            continue
        if not manifests:
            raise EdgeResolutionError(
                f"{_describe(edge)}: no manifest from {edge.source_node!r} in this run "
                "(did the upstream task run and succeed? clear it to run it again)"
            )
        if edge.target_kind is EdgeKind.INPUT:
            names = taken.setdefault(edge.target_key, set())
            count = 0
            for manifest in manifests:
                files, source_name = selected_files(edge, manifest), _source(manifest)
                count += len(files)
                for file in files:
                    _add_file(values, names, edge.target_key, file, edge, source_name)
            values.log.append(f"{_describe(edge)}: {count} file(s)")
            continue
        found = [_value(edge, manifest) for manifest in manifests]
        if source.kind is not NodeKind.TASK:
            value: Any = found[0]
        elif edge.source_kind is EdgeKind.ENVIRONMENT_VARIABLE:
            distinct = list(dict.fromkeys(found))
            if len(distinct) > 1:
                raise EdgeResolutionError(
                    f"{_describe(edge)}: the executions of task node {edge.source_node!r} disagree "
                    f"({', '.join(map(repr, distinct))}); an environment variable takes one value"
                )
            value = distinct[0]
        else:
            value = found  # one value per execution: spreads over a task node downstream
        if edge.target_kind is EdgeKind.ENVIRONMENT_VARIABLE:
            values.environment[edge.target_key] = value
        else:
            values.parameters[edge.target_key] = value
    return values


def edge_for_parameter(pipeline: PipelinePlan, node: NodePlan, parameter: str) -> str | None:
    """The edge that fills a parameter, for error messages."""
    for edge in pipeline.edges_into(node.name):
        if edge.target_kind is EdgeKind.PARAMETER and edge.target_key == parameter:
            return _describe(edge)
    return None
