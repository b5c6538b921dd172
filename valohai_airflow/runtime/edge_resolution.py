"""Edges at run time: what the upstream manifests of THIS run give one node.

- `output.<glob>` → input: the upstream's output files whose path (relative to its outputs dir)
  matches the glob (`runtime.globs` semantics).
- `input.<glob>` → input: the upstream's input files of every input whose NAME matches the glob
  (`evaluate.input.model*` takes all files of the input `model`), as in Valohai's Three-Trainings.
- `parameter.<p>` → parameter: the upstream's resolved value of p.
- `metadata.<key>` → parameter: the last value the upstream printed for key.
- `environment-variable.<X>` → environment-variable: the upstream's X, whose source the plan copied
  (plan/variables.py): the manifest keeps variable names only, so here the edge is checked (the
  upstream ran with X) and a failed `on-error: continue` upstream drops the variable.
- `deployment.id` / `deployment.version_id` → parameter: what the deployment node published.
- `dependency`: ordering only; `file` edges are read by the deployment node (`runtime.bundles`).

A task node upstream has one manifest per execution that succeeded, in map-index order: file edges
bring the files of all of them, value edges a list of their values (which spreads over a task node
downstream, one execution per upstream execution).

Several edges into one input add up. Files are placed under their own basename; when two edges
(or two executions of a task node) bring the same name, the first (in edge, then map-index order)
keeps it and every later one is renamed to `<source>-<name>`, where the source is the node, or
`<node>-<map index>` for a task node's execution (and, when one source brings that name again,
`<source>-<stem>-2.<extension>`, `-3`, …); the log says so. Valohai picks one at random there; we
keep them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import EdgeKind, EdgePlan, NodeKind, NodePlan, PipelinePlan
from valohai_airflow.runtime.globs import compile_glob
from valohai_airflow.runtime.manifest import Manifest, ManifestFile


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


class EdgeFiles(Sequence[EdgeFile]):
    """The files the edges bring into one input, in order: a view over the upstream manifests'
    own records and the name each gets. An `EdgeFile` is made when one is read, so resolving an
    every-file edge over 100,000 outputs does not leave 100,000 new objects behind (making them,
    and the garbage collector's passes over them, was most of its time)."""

    __slots__ = ("_files", "_names", "_sources")

    def __init__(self) -> None:
        self._files: list[ManifestFile] = []
        self._names: list[str] = []
        self._sources: list[str] = []  # the upstream node of each file

    def _extend(self, files: Sequence[ManifestFile], names: Sequence[str], source_node: str) -> None:
        self._files += files
        self._names += names
        self._sources += [source_node] * len(files)

    def _make(self, i: int) -> EdgeFile:
        f = self._files[i]
        assert f.uri is not None  # resolve_edges refuses files without a stored copy
        return EdgeFile(self._names[i], f.uri, f.size, f.sha256, self._sources[i], dict(f.properties))

    def __len__(self) -> int:
        return len(self._files)

    @overload
    def __getitem__(self, index: int) -> EdgeFile: ...

    @overload
    def __getitem__(self, index: slice) -> list[EdgeFile]: ...

    def __getitem__(self, index: int | slice) -> EdgeFile | list[EdgeFile]:
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(len(self)))]
        return self._make(range(len(self))[index])  # range() gives negative indices and IndexError

    def __iter__(self) -> Iterator[EdgeFile]:
        return (self._make(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # equal to lists, mutable like them

    def __repr__(self) -> str:
        return f"EdgeFiles({list(self)!r})"


@dataclass
class EdgeValues:
    inputs: dict[str, EdgeFiles] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    dropped_variables: set[str] = field(default_factory=set)  # their upstream failed (on-error: continue)
    log: list[str] = field(default_factory=list)


def selected_files(edge: EdgePlan, manifest: Manifest) -> list[ManifestFile]:
    """The files of one upstream manifest that a file edge's glob picks."""
    glob = compile_glob(edge.source_key)
    if edge.source_kind is EdgeKind.OUTPUT:
        if glob.matches_everything:
            return list(manifest.outputs)
        full = glob.regex.fullmatch  # glob.matches without basename mode, minus a call per file
        return [f for f in manifest.outputs if full(f.path)]
    return [f for name, files in sorted(manifest.inputs.items()) if glob.matches(name) for f in files]


def _source(manifest: Manifest) -> str:
    return manifest.node if manifest.map_index < 0 else f"{manifest.node}-{manifest.map_index}"


def _add_files(
    values: EdgeValues,
    taken: set[str],
    input_name: str,
    files: list[ManifestFile],
    edge: EdgePlan,
    source: str,
) -> None:
    """Place `files` under their basenames in `input_name`. `taken` holds the names already placed
    there (kept by the caller across edges); a name already taken becomes `<source>-<name>`."""
    if not files:
        return
    missing = next((f for f in files if f.uri is None), None)
    if missing is not None:
        raise EdgeResolutionError(f"{edge.text}: upstream file {missing.path!r} has no stored copy")
    names = [f.path.rpartition("/")[2] for f in files]  # posixpath.basename, without its per-call overhead
    if len(set(names)) == len(names) and taken.isdisjoint(names):
        taken.update(names)  # no clash: the common case, without a Python-level step per file
    else:
        logged, renamed = _unclash(names, taken, source)
        for old, new in logged:
            values.log.append(f"input {input_name!r}: {old!r} from {source} arrives as {new!r}")
        if renamed > len(logged):
            values.log.append(
                f"input {input_name!r}: {renamed - len(logged):,} more files from {source} renamed "
                "the same way (every name is in inputs.json)"
            )
    values.inputs.setdefault(input_name, EdgeFiles())._extend(files, names, edge.source_node)


#: renamed files logged one by one per edge; the rest are counted in one line
LOGGED_RENAMES = 100


def _unclash(names: list[str], taken: set[str], source: str) -> tuple[list[tuple[str, str]], int]:
    """Rename in place each of `names` already in `taken` (placed earlier, or earlier in `names`):
    `<source>-<name>`, and when that is taken too (one source bringing a basename several times) the
    first free of `<source>-<stem>-2.<ext>`, `-3`, …, so no file overwrites another. Adds every name
    to `taken`; returns the first LOGGED_RENAMES (old, new) pairs and how many were renamed. The
    next counter and the split name are kept per name, so a basename that repeats k times costs k
    steps, not k²/2 (100,000 outputs in 100 folders of the same names)."""
    add = taken.add
    forms: dict[str, list[Any]] = {}  # name → [next counter, "<source>-<stem>", ".<ext>"]
    logged: list[tuple[str, str]] = []
    count = 0
    for i, name in enumerate(names):
        if name not in taken:
            add(name)
            continue
        form = forms.get(name)
        renamed = f"{source}-{name}"
        if form is None:
            stem, dot, extension = renamed.partition(".")
            form = forms[name] = [2, stem, dot + extension]
        if form[0] > 2 or renamed in taken:
            number, stem, suffix = form
            renamed = f"{stem}-{number}{suffix}"
            while renamed in taken:
                number += 1
                renamed = f"{stem}-{number}{suffix}"
            form[0] = number + 1
        add(renamed)
        names[i] = renamed
        count += 1
        if count <= LOGGED_RENAMES:
            logged.append((name, renamed))
    return logged, count


def _value(edge: EdgePlan, manifest: Manifest) -> Any:
    """The value a parameter, metadata, environment-variable or deployment edge reads from one manifest."""
    kind, key = edge.source_kind, edge.source_key
    if kind is EdgeKind.PARAMETER:
        if key not in manifest.parameters:
            raise EdgeResolutionError(f"{edge.text}: {_source(manifest)!r} has no parameter {key!r}")
        return manifest.parameters[key]
    if kind is EdgeKind.METADATA:
        if key not in manifest.metadata:
            known = ", ".join(sorted(manifest.metadata)) or "none"
            raise EdgeResolutionError(
                f"{edge.text}: {_source(manifest)!r} printed no metadata key {key!r} (keys printed: {known})"
            )
        return manifest.metadata[key]
    if kind is EdgeKind.ENVIRONMENT_VARIABLE:
        if key not in manifest.variables:
            raise EdgeResolutionError(
                f"{edge.text}: {_source(manifest)!r} has no environment variable {key!r}"
            )
        return key
    if key not in manifest.deployment:
        raise EdgeResolutionError(f"{edge.text}: {_source(manifest)!r} published no deployment {key!r}")
    return manifest.deployment[key]


def resolve_edges(
    pipeline: PipelinePlan, node: NodePlan, upstream: Mapping[str, Sequence[Manifest]]
) -> EdgeValues:
    """`upstream` maps node names to the manifests their tasks returned in this run: one for an
    execution node, one per succeeded execution (in map-index order) for a task node."""
    values = EdgeValues()
    taken: dict[str, set[str]] = {}  # input name → file names placed so far
    for edge in node.sources.edges:
        if edge.target_kind in (EdgeKind.DEPENDENCY, EdgeKind.FILE):
            continue
        source = pipeline.node(edge.source_node)
        manifests = upstream.get(edge.source_node)
        if not manifests and source.on_error == "continue":
            values.log.append(f"{edge.text}: nothing ({edge.source_node!r} failed; on-error: continue)")
            if edge.target_kind is EdgeKind.ENVIRONMENT_VARIABLE:
                values.dropped_variables.add(edge.target_key)
            continue
        if not manifests:
            raise EdgeResolutionError(
                f"{edge.text}: no manifest from {edge.source_node!r} in this run "
                "(did the upstream task run and succeed? clear it to run it again)"
            )
        if edge.target_kind is EdgeKind.INPUT:
            names = taken.setdefault(edge.target_key, set())
            count = 0
            for manifest in manifests:
                files = selected_files(edge, manifest)
                count += len(files)
                _add_files(values, names, edge.target_key, files, edge, _source(manifest))
            values.log.append(f"{edge.text}: {count} file(s)")
            continue
        found = [_value(edge, manifest) for manifest in manifests]
        if edge.target_kind is EdgeKind.ENVIRONMENT_VARIABLE:
            continue  # checked; the value comes from the upstream's source (runtime/variables.py)
        # a task node upstream: one value per execution, which spreads over a task node downstream
        values.parameters[edge.target_key] = found[0] if source.kind is not NodeKind.TASK else found
    return values


def edge_for_parameter(node: NodePlan, parameter: str) -> str | None:
    """The edge that fills a parameter, for error messages."""
    edges = node.sources.parameter(parameter).edges
    return edges[0].text if edges else None
