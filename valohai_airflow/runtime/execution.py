"""One try of one node around its container, without Airflow (DESIGN.md §4).

`prepare` resolves parameters and edges, makes the work dir, materialises the inputs and writes
the config files, and fails before any container starts when something is missing. `finish`
collects and uploads the outputs (also after a failed run), stores the metadata series and returns
the manifest in its XCom form. The operator only runs the container in between.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.conf_keys import node_input_key
from valohai_airflow.plan.machines import container_network
from valohai_airflow.plan.model import DagKind, NodePlan, PipelinePlan
from valohai_airflow.plan.mounts import MountError, checked_mounts
from valohai_airflow.runtime.adhoc import AdhocCode, AdhocError, check_step
from valohai_airflow.runtime.catalogue import input_sources, plan_publication, with_lineage
from valohai_airflow.runtime.config_files import (
    CONTAINER_ROOT,
    InputFileEntry,
    execution_json,
    write_config_file,
    write_config_files,
)
from valohai_airflow.runtime.confinement import ConfinementError, InputPolicy
from valohai_airflow.runtime.distributed import distributed_group
from valohai_airflow.runtime.edge_resolution import EdgeFile, edge_for_parameter, resolve_edges
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.input_urls import InputUrlError, interpolate_url
from valohai_airflow.runtime.inputs import DownloadCache, InputError, InputSource, materialise_input
from valohai_airflow.runtime.manifest import (
    Manifest,
    ManifestFile,
    discard_try,
    discard_unfinished_tries,
    load_upstream,
    output_entries,
    store_manifest,
    to_xcom,
)
from valohai_airflow.runtime.metadata import MetadataCollector
from valohai_airflow.runtime.outputs import stage_outputs
from valohai_airflow.runtime.parameters import NodeParameterError, resolve_parameters
from valohai_airflow.runtime.repository import excluded_summary
from valohai_airflow.runtime.variables import NO_SECRETS, ResolvedVariables, resolve_variables
from valohai_airflow.runtime.workdir import WorkDir, create_workdir, valohai_environment
from valohai_airflow.spec.commands import build_script
from valohai_airflow.spec.paths import is_relative_local
from valohai_airflow.store.base import ArtifactStore, StoreError, join_key
from valohai_airflow.store.catalogue import (
    AliasEvent,
    Catalogue,
    CatalogueError,
    DatasetVersion,
    ModelVersion,
    Producer,
)
from valohai_airflow.store.resolver import StoreResolver

ON_DEMAND_IDS = uuid.UUID("0b7f3c1e-6a55-5d2e-9c1f-4e8d2a6b9f30")  # namespace of on-demand input ids


class ExecutionError(ValohaiAirflowError):
    """A node that cannot start: a missing required input, a bad value, an unreachable upstream."""


@dataclass(frozen=True)
class ExecutionRequest:
    key: ExecutionKey
    project_name: str
    project_root: Path
    pipeline: PipelinePlan
    node: NodePlan
    conf: Mapping[str, Any]  # the run's params (defaults merged with the run conf)
    upstream: Mapping[str, Any]  # node name → the XCom value its task returned in this run
    stores: StoreResolver  # the artefact store, and s3:// inputs with its credentials
    work_base: Path
    cache: DownloadCache
    variant: Mapping[str, Any] = field(default_factory=dict)  # a task node's execution: its values
    input_policy: InputPolicy = field(default_factory=InputPolicy)  # [valohai] input_roots and networks
    # the node's environment variables, resolved at task start with their secrets masked (the airflow
    # layer's); None: resolved here from literals and the run conf only (no Airflow to read secrets from)
    variables: ResolvedVariables | None = None

    def source_policy(self) -> InputPolicy:
        """What a run conf's or default's input URLs may reach: the configured roots and networks,
        plus the project folder and a local store (whose files a store URI names)."""
        local = self.store.local_root
        return self.input_policy.with_roots(self.project_root, *([local] if local is not None else []))

    @property
    def store(self) -> ArtifactStore:
        return self.stores.store


@dataclass
class PreparedExecution:
    request: ExecutionRequest
    workdir: WorkDir
    parameters: dict[str, Any]
    script: str
    environment: dict[str, str]  # everything the container gets: the variables, then the `VH_*` ones
    variables: ResolvedVariables  # the node's own variables (the manifest lists their names)
    inputs: dict[str, list[InputFileEntry]]
    log: list[str]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host_mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # the step's allowed `mounts`
    published: list[AliasEvent | DatasetVersion | ModelVersion] = field(default_factory=list)  # by finish()
    network: str | None = None  # the container's Docker network (None: the engine's default)
    network_from: str = ""  # who asked for it, for the error when the engine lacks it

    @property
    def command(self) -> list[str]:
        return script_command(self.script)

    def mounts(self) -> list[tuple[str, str, bool]]:
        """(host path, container path, read only): repository and outputs writable."""
        w = self.workdir
        return [
            (str(w.repository), f"{CONTAINER_ROOT}/repository", False),
            (str(w.inputs), f"{CONTAINER_ROOT}/inputs", True),
            (str(w.outputs), f"{CONTAINER_ROOT}/outputs", False),
            (str(w.config), f"{CONTAINER_ROOT}/config", True),
            *self.host_mounts,
        ]


def script_command(script: str) -> list[str]:
    """Valohai's rule: the commands form one script whose exit status is the last command's.

    A leading `#!` line picks the interpreter; otherwise `/bin/sh` runs it.
    """
    if script.startswith("#!"):
        first, _, body = script.partition("\n")
        return [*shlex.split(first[2:].strip()), "-c", body]
    return ["/bin/sh", "-c", script]


def _conf_urls(
    request: ExecutionRequest, input_name: str, default: Sequence[str], parameters: Mapping[str, Any]
) -> list[str]:
    """The run conf's or default URLs, `{parameter:x}` filled in, relative paths in the project."""
    value = request.conf.get(node_input_key(request.node.name, input_name), list(default))
    urls = [value] if isinstance(value, str) else list(value or [])
    out = []
    for url in urls:
        if not isinstance(url, str):
            raise ExecutionError(
                f"node {request.node.name!r}: input {input_name!r}: {url!r} is not a URL or path string"
            )
        try:
            url = interpolate_url(url, parameters)
        except InputUrlError as error:
            raise ExecutionError(f"node {request.node.name!r}: input {input_name!r}: {error}") from error
        out.append(str(request.project_root / url) if is_relative_local(url) else url)
    return out


def _edge_source(file: EdgeFile) -> InputSource:
    metadata = (dict(file.properties),) if file.properties else ()
    return InputSource(file.uri, sha256=file.sha256, size=file.size, metadata=metadata, path_hint=file.name)


def _materialise_inputs(
    request: ExecutionRequest,
    workdir: WorkDir,
    edge_files: Mapping[str, Sequence[EdgeFile]],
    parameters: Mapping[str, Any],
    log: list[str],
) -> dict[str, list[InputFileEntry]]:
    step = request.node.step
    assert step is not None
    result: dict[str, list[InputFileEntry]] = {}
    policy = request.source_policy()
    for input_ in step.inputs:
        from_edges = edge_files.get(input_.name)
        replaced = from_edges is not None and request.node.edge_merge_mode != "append"
        # a default that edges replace is never read (nor refused, nor resolved from the catalogue)
        urls = [] if replaced else _conf_urls(request, input_.name, input_.default, parameters)
        files: list[InputFileEntry] = []
        try:
            if urls:
                done = materialise_input(
                    input_.name,
                    input_sources(urls, Catalogue(request.store)),
                    workdir.inputs,
                    request.cache,
                    keep_directories=input_.keep_directories,
                    filename=input_.filename,
                    stores=request.stores,
                    policy=policy,
                )
                files += done.files
                log += done.warnings
            for edge_file in from_edges or []:
                done = materialise_input(
                    input_.name,
                    [_edge_source(edge_file)],
                    workdir.inputs,
                    request.cache,
                    keep_directories="full",
                    stores=request.stores,
                )
                files += done.files
                log += done.warnings
        except (InputError, ConfinementError) as error:
            raise ExecutionError(f"node {request.node.name!r}: input {input_.name!r}: {error}") from error
        if not files and not input_.optional:
            raise ExecutionError(
                f"node {request.node.name!r}: required input {input_.name!r} has no files "
                f"(no default, no run conf value {node_input_key(request.node.name, input_.name)!r}, "
                "and no edge brought any); the container was not started"
            )
        result[input_.name] = files
    return result


def _network(node: NodePlan, step_environment: Mapping[str, str]) -> tuple[str | None, str]:
    """The Docker network the node's container gets and who asked for it; a forbidden one fails the
    node before any work."""
    try:
        return container_network(node.machine, step_environment)
    except ValohaiAirflowError as error:
        raise ExecutionError(f"node {node.name!r}: {error}; the container was not started") from error


def prepare(request: ExecutionRequest) -> PreparedExecution:
    node, pipeline = request.node, request.pipeline
    step = node.step
    if step is None:
        raise ExecutionError(f"node {node.name!r} has no step to run")
    upstream = load_upstream(request.upstream, request.stores)
    edges = resolve_edges(pipeline, node, upstream)
    try:
        parameters = resolve_parameters(node, request.conf, {**edges.parameters, **request.variant})
    except NodeParameterError as error:
        culprit = next((edge_for_parameter(node, p) for p in edges.parameters if p in str(error)), None)
        raise ExecutionError(f"{error}" + (f" (set by edge {culprit})" if culprit else "")) from error
    try:
        host_mounts = checked_mounts(node.name, node.machine.mounts)
    except MountError as error:
        raise ExecutionError(str(error)) from error
    given = request.variables
    if given is None:
        given = resolve_variables(node, request.conf, NO_SECRETS)
    variables = given.without(edges.dropped_variables)
    network, network_from = _network(node, variables.environment)
    code = _adhoc_code(request)
    workdir = create_workdir(request.work_base, request.key, None if code else request.project_root)
    log = list(edges.log)
    if code is not None:
        _use_adhoc_code(request, code, workdir)
        log.append(f"/valohai/repository: the ad hoc code {code.commit} ({code.uri})")
    log += [f"mount: host folder {h} → {c}{' (read-only)' if ro else ''}" for h, c, ro in host_mounts]
    if workdir.excluded:
        log.append(excluded_summary(workdir.excluded))
    inputs = _materialise_inputs(request, workdir, edges.inputs, parameters, log)
    in_pipeline = pipeline.kind is DagKind.PIPELINE  # a step run on its own is no pipeline's node
    on_demand = {
        i.name: str(uuid.uuid5(ON_DEMAND_IDS, f"{request.key.execution_id}/{i.name}"))
        for i in step.inputs
        if i.download == "on-demand"
    }
    log += [
        f"input {name!r} is `download: on-demand`: it was fetched before the command starts"
        for name in on_demand
    ]
    group = distributed_group(node, request.key, network)
    if group is not None:
        write_config_file(workdir.config, "distributed", group[1])
        log.append(
            f"distributed task: member {request.key.map_index} of {group[0]['VH_DIST_MEMBER_COUNT']} "
            "(/valohai/config/distributed.json, VH_DIST_*)"
        )
    write_config_files(
        workdir.config,
        parameters=parameters,
        inputs=inputs,
        on_demand=on_demand,
        execution=execution_json(
            execution_id=request.key.execution_id,
            step=step.name,
            image=step.image,
            project_name=request.project_name,
            commit=code.commit if code else None,
            title=node.name,
            created_at=datetime.now(UTC),
            pipeline_id=request.key.run_id if in_pipeline else None,
            pipeline_title=pipeline.name if in_pipeline else None,
            pipeline_node_id=node.name if in_pipeline else None,
        ),
    )
    environment = {
        **variables.environment,
        **valohai_environment(
            request.key,
            project_id=request.project_name,
            pipeline_id=request.key.run_id if in_pipeline else None,
            pipeline_node_id=node.name if in_pipeline else None,
        ),
        **(group[0] if group else {}),
    }
    return PreparedExecution(
        request=request,
        workdir=workdir,
        parameters=parameters,
        script=build_script(step, parameters),
        environment=environment,
        variables=variables,
        inputs=inputs,
        log=log,
        host_mounts=host_mounts,
        network=network,
        network_from=network_from,
    )


def _adhoc_code(request: ExecutionRequest) -> AdhocCode | None:
    try:
        return AdhocCode.of(request.conf)
    except AdhocError as error:
        raise ExecutionError(f"node {request.node.name!r}: {error}; the container was not started") from error


def _use_adhoc_code(request: ExecutionRequest, code: AdhocCode, workdir: WorkDir) -> None:
    """The snapshot as the work dir's repository, refused when it changes the node's step."""
    step = request.node.step
    assert step is not None
    try:
        code.extract(request.stores, workdir.repository, workdir.root)
        check_step(request.project_root, workdir.repository, request.node.name, step.name, code)
    except AdhocError as error:
        message = str(error)
        if not message.startswith("node "):
            message = f"node {request.node.name!r}: {message}; the container was not started"
        raise ExecutionError(message) from error


def finish(
    prepared: PreparedExecution, *, exit_code: int | None, log_lines: Sequence[str], status: str
) -> dict[str, Any]:
    """Collect, upload and describe what the container left; returns the XCom value. All or
    nothing: a failed stage-out leaves nothing of this try in the store."""
    request = prepared.request
    prefix = request.key.prefix
    metadata = MetadataCollector()
    metadata.feed_all(log_lines)
    try:
        for number in discard_unfinished_tries(request.store, request.key):
            prepared.log.append(f"removed the partial outputs try {number} left in the store")
        return _stage_out(prepared, metadata, exit_code=exit_code, status=status)
    except CatalogueError as error:  # a dataset version that exists, a malformed alias: refused
        cleanup = _discard(request)
        kept = (
            "no output of this try is kept in the store"
            if cleanup is None
            else f"removing what this try had stored failed ({cleanup})"
        )
        raise ExecutionError(
            f"node {request.node.name!r}: its outputs ask the data catalogue for something it refuses: "
            f"{error}. The step itself {status}; {kept}; the files are kept in {prepared.workdir.outputs}"
        ) from error
    except (StoreError, OSError) as error:  # a full disk, an S3 server gone mid-upload
        cleanup = _discard(request)
        removed = (
            "what it had stored was removed"
            if cleanup is None
            else f"removing what it had stored failed too ({cleanup}); the next try removes it"
        )
        raise ExecutionError(
            f"node {request.node.name!r}: storing its outputs under {request.store.uri(prefix)} failed "
            f"(the step itself {status}): {error}. No output of this try is kept in the store ({removed}); "
            f"the files are kept in {prepared.workdir.outputs}; "
            "make room in or repair the store, then clear the task to run it again"
        ) from error


def _stage_out(
    prepared: PreparedExecution, metadata: MetadataCollector, *, exit_code: int | None, status: str
) -> dict[str, Any]:
    """Outputs, metadata series and manifest into the store, the manifest last (it makes them visible)."""
    request = prepared.request
    step = request.node.step
    assert step is not None
    prefix = request.key.prefix
    collection, uris = stage_outputs(prepared.workdir.outputs, request.store, join_key(prefix, "outputs"))
    metadata_uri = request.store.put_bytes(metadata.to_jsonl(), join_key(prefix, "metadata.jsonl")).uri
    prepared.log += [f"output {s.path!r} skipped: {s.reason}" for s in collection.skipped]
    prepared.log += collection.problems
    manifest = Manifest(
        execution_id=request.key.execution_id,
        node=request.node.name,
        map_index=request.key.map_index,
        variant=dict(request.variant),
        step=step.name,
        image=step.image,
        command=[prepared.script],
        exit_code=exit_code,
        status=status,
        started_at=prepared.started_at,
        finished_at=datetime.now(UTC),
        parameters=prepared.parameters,
        variables=sorted(prepared.variables.environment),
        inputs={
            name: [
                ManifestFile(
                    path=f.name,
                    uri=f.uri,
                    size=f.size,
                    sha256=f.sha256,
                    datum_id=f.datum_id,
                    catalogue=list(f.catalogue),
                )
                for f in files
            ]
            for name, files in prepared.inputs.items()
        },
        outputs=output_entries(collection, uris),
        metadata=metadata.last,
        metadata_uri=metadata_uri,
        metadata_truncated=metadata.truncated,
        outputs_prefix_uri=request.store.uri(join_key(prefix, "outputs")),
        skipped_outputs=[s.path for s in collection.skipped],
    )
    publication = (
        plan_publication(manifest.outputs, request.key.execution_id) if status == "completed" else None
    )
    catalogue = Catalogue(request.store)
    if publication:
        publication.check(catalogue)  # an existing dataset version: refused before anything is kept
    files_key = join_key(prefix, "manifest-files.json")
    value = to_xcom(manifest, request.store, files_key)
    store_manifest(value, request.store, request.key)
    if publication:
        prepared.log += publication.publish(catalogue, _producer(request))
        prepared.published = publication.published
        # the manifest again, now saying what each output became; the first one stands if this fails
        outputs = with_lineage(manifest.outputs, publication.published, request.key.execution_id)
        try:
            value = to_xcom(manifest.model_copy(update={"outputs": outputs}), request.store, files_key)
            store_manifest(value, request.store, request.key)
        except (StoreError, OSError) as error:
            prepared.log.append(
                f"published, but the stored manifest does not say so (the Outputs page will not): {error}"
            )
    return value


def _discard(request: ExecutionRequest) -> StoreError | OSError | None:
    """Remove what this try stored (all or nothing); the problem when that fails too."""
    try:
        discard_try(request.store, request.key)
    except (StoreError, OSError) as cleanup:
        return cleanup
    return None


def _producer(request: ExecutionRequest) -> Producer:
    key = request.key
    return Producer(
        dag_id=key.dag_id,
        run_id=key.run_id,
        node=key.node,
        map_index=key.map_index,
        try_number=key.try_number,
        execution_id=key.execution_id,
    )
