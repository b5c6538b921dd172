"""Reuse chosen nodes of an earlier run (Valohai's "reuse nodes"), without Airflow.

A run whose conf names a source run of the same DAG and nodes to take from it
(`valohai.reuse.run`, `valohai.reuse.nodes`, `valohai.reuse.upstream_of`: every node upstream of
these) does not run those nodes: each returns the manifest its source run's last successful try
stored, marked `reused_from` {dag_id, run_id, node, map_index, try_number}, without starting a
container; the other nodes run and receive those manifests through the ordinary edges. A task node
is reused as a whole: its variants are the source's (`source_variants`), so the mapping has the same
length and map index i returns the source's map index i.

Unlike `reuse-executions` (runtime/reuse.py: any earlier execution with the same content), the
user picks the run, whatever changed since. Refused, naming run, node and file: a node the plan
lacks, a source run without a successful try of a reused node (every node task checks this before
its container starts), an output gone from the store (checked by the reused node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.conf_keys import REUSE_NODES_KEY, REUSE_RUN_KEY, REUSE_UPSTREAM_OF_KEY
from valohai_airflow.plan.model import NodeKind, NodePlan, PipelinePlan
from valohai_airflow.runtime.ids import ExecutionKey, safe_segment
from valohai_airflow.runtime.manifest import MANIFEST_NAME, Manifest, load_manifest, store_manifest
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.store.base import ArtifactStore, ObjectNotFoundError, join_key
from valohai_airflow.store.resolver import StoreResolver

RUN_KEY, NODES_KEY, UPSTREAM_OF_KEY = REUSE_RUN_KEY, REUSE_NODES_KEY, REUSE_UPSTREAM_OF_KEY
SUCCEEDED = "completed"  # a manifest's status when its step succeeded
_NEVER_RAN = "it stored no execution: the node never ran there, or another DAG's run was given"


class ReuseNodesError(ValohaiAirflowError):
    """A reuse request that cannot be honoured: the node is not run, nothing is started."""


def reusable_nodes(pipeline: PipelinePlan) -> list[str]:
    """The nodes a run may take from an earlier run: execution and task nodes (a deployment node
    always deploys), in pipeline order."""
    return [n.name for n in pipeline.nodes if n.kind is not NodeKind.DEPLOYMENT and n.step is not None]


def upstream_closure(pipeline: PipelinePlan, nodes: Iterable[str]) -> set[str]:
    """Every node some of `nodes` waits for, directly or not (any edge), without `nodes` themselves."""
    found: set[str] = set()
    pending = [u for name in nodes for u in pipeline.upstreams(name)]
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending.extend(pipeline.upstreams(name))
    return found


def reuse_conf(
    pipeline: PipelinePlan | None,
    source_run: str,
    nodes: Sequence[str] = (),
    upstream_of: Sequence[str] = (),
) -> dict[str, Any]:
    """The run conf that reuses `nodes` (and every node upstream of `upstream_of`) of `source_run`;
    checked against the plan, so a client refuses a bad request before triggering. Without the plan
    (a client that knows only the DAG id) the request's shape is checked here and the names by the
    trigger form's Params and the node tasks."""
    conf = {RUN_KEY: source_run, NODES_KEY: list(nodes), UPSTREAM_OF_KEY: list(upstream_of)}
    if pipeline is not None:
        requested(pipeline, conf, run_id="")
    elif not source_run or not (_names(nodes, NODES_KEY) or _names(upstream_of, UPSTREAM_OF_KEY)):
        raise ReuseNodesError(
            "reuse: name a source run and at least one node (or a node to reuse upstream of)"
        )
    return conf


@dataclass(frozen=True)
class ReuseRequest:
    """A client's request to reuse nodes of run `run` of the same DAG (`reuse_conf` makes its conf)."""

    run: str
    nodes: tuple[str, ...] = ()
    upstream_of: tuple[str, ...] = ()

    def conf(self, pipeline: PipelinePlan | None = None) -> dict[str, Any]:
        return reuse_conf(pipeline, self.run, self.nodes, self.upstream_of)


@dataclass(frozen=True)
class NodeReuse:
    """What this run takes from which earlier run of its DAG."""

    dag_id: str
    source_run: str
    nodes: frozenset[str]  # node names, the `upstream_of` closure included

    def source_tries(self, store: ArtifactStore, node: NodePlan) -> dict[int, int]:
        """Map index → the source run's last try of `node` whose step succeeded. Refused when there
        is none."""
        prefix = join_key(
            safe_segment(self.dag_id), safe_segment(self.source_run), safe_segment(node.task_id)
        )
        tries: dict[int, list[int]] = {}
        for obj in store.list_prefix(prefix + "/"):
            parts = obj.key[len(prefix) + 1 :].split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_NAME and _is_int(parts[0]) and parts[1].isdigit():
                tries.setdefault(int(parts[0]), []).append(int(parts[1]))
        chosen: dict[int, int] = {}
        for map_index, numbers in sorted(tries.items()):
            for number in sorted(numbers, reverse=True):
                if self._status(store, node, map_index, number) == SUCCEEDED:
                    chosen[map_index] = number
                    break
        if not chosen or (node.blueprint is not None and sorted(chosen) != list(range(len(chosen)))):
            raise ReuseNodesError(
                f"node {node.name!r}: run {self.source_run!r} of DAG {self.dag_id!r} has no successful "
                f"execution of it to reuse{self._executions_seen(tries, chosen)}; pick a run where it "
                f"succeeded, or leave it out of {NODES_KEY!r}/{UPSTREAM_OF_KEY!r}"
            )
        return chosen

    def _executions_seen(self, tries: Mapping[int, list[int]], chosen: Mapping[int, int]) -> str:
        if not tries:
            return f" ({_NEVER_RAN})"
        lacking = sorted(set(tries) - set(chosen))
        return f" (map index(es) {lacking} never succeeded)" if lacking else ""

    def _status(self, store: ArtifactStore, node: NodePlan, map_index: int, number: int) -> str | None:
        value = self._read(store, node, map_index, number)
        return str(value.get("status")) if value else None

    def _read(
        self, store: ArtifactStore, node: NodePlan, map_index: int, number: int
    ) -> dict[str, Any] | None:
        key = ExecutionKey(self.dag_id, self.source_run, node.task_id, map_index, number)
        try:
            value = store.read_json(join_key(key.prefix, MANIFEST_NAME))
        except ObjectNotFoundError:
            return None
        return value if isinstance(value, dict) else None

    def check_sources(self, store: ArtifactStore, pipeline: PipelinePlan) -> None:
        """Every reused node stored an execution in the source run: what any node task checks before
        its container starts, so a request naming a node the source lacks starts nothing. One listing
        of the source run; the reused node itself checks the try's status and files."""
        prefix = join_key(safe_segment(self.dag_id), safe_segment(self.source_run))
        stored = {
            o.key[len(prefix) + 1 :].split("/", 1)[0]
            for o in store.list_prefix(prefix + "/")
            if o.key.endswith("/" + MANIFEST_NAME)
        }
        for node in pipeline.nodes:
            if node.name in self.nodes and safe_segment(node.task_id) not in stored:
                raise ReuseNodesError(
                    f"node {node.name!r}: run {self.source_run!r} of DAG {self.dag_id!r} has no execution of "
                    f"it to reuse ({_NEVER_RAN}); pick a run where it succeeded, or leave it out of "
                    f"{NODES_KEY!r}/{UPSTREAM_OF_KEY!r}; no container was started"
                )

    def reused_manifest(self, store: ArtifactStore, node: NodePlan, key: ExecutionKey) -> dict[str, Any]:
        """The XCom value execution `key` returns: the source's manifest of the same map index, its
        outputs checked, marked `reused_from`; stored as this try's manifest too, so a later run can
        reuse it from this one."""
        tries = self.source_tries(store, node)
        if key.map_index not in tries:
            raise ReuseNodesError(
                f"node {node.name!r}: run {self.source_run!r} has no execution with map index "
                f"{key.map_index} (it has {sorted(tries)}); the variants of a reused task come from the "
                "source run, so this is a mapping the source never had"
            )
        number = tries[key.map_index]
        value = self._read(store, node, key.map_index, number)
        assert value is not None, "source_tries read it a moment ago"
        missing = missing_files(value, store)
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise ReuseNodesError(
                f"node {node.name!r}: cannot reuse try {number} of run {self.source_run!r}: its files are "
                f"gone from the store: {shown}; run the node again (leave it out of the reused nodes)"
            )
        value["reused_from"] = {
            "dag_id": self.dag_id,
            "run_id": self.source_run,
            "node": node.name,
            "map_index": str(key.map_index),
            "try_number": str(number),
            "execution_id": str(value.get("execution_id", "")),
        }
        store_manifest(value, store, key)
        return value

    def source_variants(self, store: ArtifactStore, node: NodePlan) -> list[dict[str, Any]]:
        """A reused task node's executions: the source run's variants, in map index order."""
        tries = self.source_tries(store, node)
        variants = []
        for map_index, number in sorted(tries.items()):
            value = self._read(store, node, map_index, number) or {}
            variants.append(dict(value.get("variant") or {}))
        return variants


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _names(value: Any, key: str) -> list[str]:
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ReuseNodesError(f"run conf {key!r}: expected a list of node names, got {value!r}")
    return [item.strip() for item in items if item.strip()]


def requested(
    pipeline: PipelinePlan, conf: Mapping[str, Any], *, run_id: str, dag_id: str = ""
) -> NodeReuse | None:
    """The reuse this run's conf asks for; None when it asks for none. Refused: a source run that is
    missing or this run itself, a node name the pipeline lacks or that cannot be reused."""
    source = conf.get(RUN_KEY)
    nodes = _names(conf.get(NODES_KEY), NODES_KEY)
    upstream_of = _names(conf.get(UPSTREAM_OF_KEY), UPSTREAM_OF_KEY)
    if source in (None, ""):
        if nodes or upstream_of:
            raise ReuseNodesError(
                f"run conf {NODES_KEY!r}/{UPSTREAM_OF_KEY!r} name nodes to reuse but {RUN_KEY!r} names no "
                "source run; give the run id whose nodes to reuse"
            )
        return None
    if not isinstance(source, str):
        raise ReuseNodesError(f"run conf {RUN_KEY!r}: expected a run id (a string), got {source!r}")
    if source == run_id:
        raise ReuseNodesError(f"run conf {RUN_KEY!r}: {source!r} is this run itself; name an earlier run")
    allowed = reusable_nodes(pipeline)
    known = set(allowed)
    for key, names in ((NODES_KEY, nodes), (UPSTREAM_OF_KEY, upstream_of)):
        for name in names:
            if name not in known:
                hint = did_you_mean(name, allowed)
                raise ReuseNodesError(
                    f"run conf {key!r}: {pipeline.title} has no node {name!r} to reuse"
                    + (
                        ""
                        if name not in {n.name for n in pipeline.nodes}
                        else " (a deployment node always runs)"
                    ),
                    hint=hint,
                )
    chosen = set(nodes) | {n for n in upstream_closure(pipeline, upstream_of) if n in known}
    if not chosen:
        raise ReuseNodesError(
            f"run conf {RUN_KEY!r} names run {source!r} but no node to reuse: list nodes in {NODES_KEY!r} "
            f"or {UPSTREAM_OF_KEY!r} (whose upstream nodes are reused)"
        )
    return NodeReuse(dag_id=dag_id, source_run=source, nodes=frozenset(chosen))


def missing_files(value: Mapping[str, Any], store: ArtifactStore) -> list[str]:
    """The URIs of a stored manifest's outputs, file list and metadata series that are not in the
    store any more (one listing of its outputs prefix, not one request per file)."""
    manifest = Manifest.model_validate(dict(value))
    missing = []
    for uri in (manifest.files_uri, manifest.metadata_uri):
        key = store.key_for_uri(uri) if uri else None
        if uri and (key is None or not store.exists(key)):
            missing.append(uri)
    if manifest.files_uri and manifest.files_uri in missing:
        return missing
    manifest = load_manifest(manifest, StoreResolver(store))
    prefix = store.key_for_uri(manifest.outputs_prefix_uri) if manifest.outputs_prefix_uri else None
    present = {o.uri for o in store.list_prefix(prefix)} if prefix is not None else set()
    missing += [f.uri or f.path for f in manifest.outputs if f.uri not in present]
    return missing
