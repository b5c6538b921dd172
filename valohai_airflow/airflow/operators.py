"""The operators of a Valohai pipeline: a thin DockerOperator subclass per execution node.

Everything the node decides (parameters, inputs, the command, the manifest) happens in
`runtime.execution`; the operator maps it onto Docker, streams the logs, and makes sure no
container outlives its task.
"""

from __future__ import annotations

import functools
import shutil
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import BaseOperator
from airflow.sdk.api.client import get_hostname
from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout

from valohai_airflow.airflow import assets, container_guard, control_tasks
from valohai_airflow.airflow.links import NODE_LINKS
from valohai_airflow.airflow.reuse_form import reused_or_checked
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.airflow.task_ids import sibling_task_id
from valohai_airflow.airflow.variables import node_environment
from valohai_airflow.engine.docker import (
    DockerAPIError,
    DockerEngine,
    HostConfigClient,
    OutputTapClient,
    bind_mounts,
    engine_url,
    gpu_requests,
)
from valohai_airflow.engine.interface import EngineError, force_remove, remove_labelled
from valohai_airflow.plan.blueprints import label as variant_label
from valohai_airflow.plan.model import EdgeKind, MachinePlan, NodePlan, PipelinePlan
from valohai_airflow.runtime.execution import ExecutionRequest, PreparedExecution, finish, prepare
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.inputs import DownloadCache
from valohai_airflow.runtime.reuse import ReuseGate
from valohai_airflow.runtime.stop_condition import StopWatch
from valohai_airflow.sizes import size_text

LABEL = "valohai-airflow"
WORKER_LABEL = f"{LABEL}.worker"  # the Airflow hostname of the worker whose task started the container
TAIL_LINES = 20
STOPPED = (
    "the task was stopped (SIGTERM: it was marked failed or cleared, or its worker shut down) and its "
    "container removed"
)


class ValohaiExecutionOperator(DockerOperator):
    """Runs a pipeline node's step in its image, as Valohai would. Nothing of the user's reaches Jinja."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    ui_color = "#7bdcb5"
    operator_extra_links = NODE_LINKS

    def __init__(
        self,
        *,
        project_name: str,
        project_root: str,
        pipeline: PipelinePlan,
        node: NodePlan,
        dag_key: str,
        docker_url: str | None = None,
        variant: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        assert node.step is not None, "execution nodes always have a step"
        step = node.step
        if step.time_limit_seconds and "execution_timeout" not in kwargs:
            kwargs["execution_timeout"] = timedelta(seconds=step.time_limit_seconds)
        kwargs.update(container_limits(node.machine))
        kwargs.setdefault("task_id", node.task_id)  # a mapped task's partial() already names it
        kwargs.setdefault("task_display_name", node.name)
        kwargs["outlets"] = assets.with_catalogue_alias(kwargs.get("outlets"), project_name)
        super().__init__(
            image=step.image,
            command=None,
            docker_url=engine_url(docker_url),
            auto_remove="never",  # removed by execute() after reading its OOM state, or by on_kill
            mount_tmp_dir=False,
            network_mode=node.machine.network,  # None: the engine's default; `_configure` decides
            xcom_all=True,
            working_dir="/valohai/repository",
            **kwargs,
        )
        self._node_labels = {LABEL: "1", f"{LABEL}.dag": dag_key, f"{LABEL}.node": node.task_id}
        self.labels = dict(self._node_labels)
        self.project_name = project_name
        self.project_root = project_root
        self.pipeline = pipeline
        self.node = node
        self.no_output_timeout = step.no_output_timeout_seconds
        self.variant = dict(variant or {})
        self._stopped = False  # on_kill ran: the task got SIGTERM
        self._network_from = node.machine.network_from
        self._stop_watch: StopWatch | None = None  # the step's stop-condition, watched during a try

    @property
    def cli(self) -> Any:
        """The hook's Docker client; with a CPU quota, one that adds it to the container's host config."""
        client = self.hook.api_client
        if self.node.machine.cpus is not None:
            client = HostConfigClient(client, nano_cpus=round(self.node.machine.cpus * 1e9))
        if self._stop_watch is not None:
            client = OutputTapClient(client, self._watch_output)
        return client

    def _watch_output(self, chunk: bytes) -> None:
        """Stop the container (through the engine) once the step's stop-condition holds."""
        watch = self._stop_watch
        if watch is None or not watch.feed(chunk) or self.container is None:
            return
        self.log.info("%s: stopping the execution; its outputs are kept and the task succeeds", watch.reason)
        try:
            self.engine.kill(self.container["Id"])
        except EngineError as error:
            self.log.info("Container %s already gone: %s", self.container["Id"][:12], error)

    @functools.cached_property
    def engine(self) -> DockerEngine:
        """Everything beside running the container (labels, OOM state, logs, removal), on the hook's
        client and engine."""
        url = self.docker_url
        return DockerEngine(url[0] if isinstance(url, list) else str(url), client=self.hook.api_client)

    @property
    def _step_condition(self) -> str | None:
        return self.node.step.stop_condition if self.node.step else None

    @property
    def _task_condition(self) -> str | None:
        """A task blueprint's stop-condition: met by one execution, it stops the task."""
        return self.node.blueprint.stop_condition if self.node.blueprint else None

    @property
    def variant_label(self) -> str:
        """A task node's execution as the UI names it (`map_index_template`): its varied values."""
        return variant_label(self.variant)

    def _key(self, context: Any) -> ExecutionKey:
        ti = context["ti"]
        return ExecutionKey(self.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)  # group-prefixed

    def _request(self, context: Any) -> ExecutionRequest:
        settings = valohai_settings()
        return ExecutionRequest(
            key=self._key(context),
            project_name=self.project_name,
            project_root=Path(self.project_root),
            pipeline=self.pipeline,
            node=self.node,
            conf=dict(context["params"]),
            upstream=upstream_values(context, self, self.pipeline, self.node),
            variables=node_environment(self.node, context["params"]),
            variant=self.variant,
            stores=settings.stores,
            work_base=settings.work_dir,
            cache=DownloadCache(settings.input_cache_dir),
            input_policy=settings.input_policy,
        )

    def _configure(self, prepared: PreparedExecution) -> None:
        key = prepared.request.key
        self.command = prepared.command
        secret = prepared.variables.secret_names
        self.environment = {k: v for k, v in prepared.environment.items() if k not in secret}
        # secrets as DockerOperator's `private_environment` (its attribute: set per try, never rendered)
        self._private_environment = {k: prepared.environment[k] for k in secret if k in prepared.environment}
        self.mounts = bind_mounts(prepared.mounts())
        self.network_mode, self._network_from = prepared.network, prepared.network_from
        self.labels = {
            **self._node_labels,
            **_execution_labels(key),
            f"{LABEL}.try": str(key.try_number),
            WORKER_LABEL: worker_hostname(),  # the worker's start removes what a killed predecessor left
        }
        self.container_name = f"vh-{key.execution_id}-{uuid.uuid4().hex[:6]}"

    def execute(self, context: Any) -> dict[str, Any]:  # type: ignore[override]  # a manifest, not log lines
        control_tasks.check_upstreams(self, context, self.pipeline, self.node)
        store = valohai_settings().stores.store
        reused = reused_or_checked(self.pipeline, self.node, self._key(context), context, store)
        if reused is not None:  # runtime/reuse_nodes.py: the node is taken from an earlier run
            self.log.info("reused from run %r: the container does not run", reused["reused_from"]["run_id"])
            return reused
        prepared = prepare(self._request(context))
        self._log(prepared.log)
        control_tasks.before_start(self, context, self.node, prepared.parameters)
        gate = ReuseGate.for_execution(prepared, image_id=self._image_id, run_started=_run_started(context))
        if gate is not None:
            decision = gate.lookup()
            self.log.info("reuse-executions: %s", decision.reason)
            if decision.manifest is not None:
                shutil.rmtree(prepared.workdir.root, ignore_errors=True)
                return decision.manifest
        self._configure(prepared)
        # a killed earlier try of this execution (the map index too: siblings run at the same time)
        remove_labelled(
            self.engine, _execution_labels(prepared.request.key), self.log, "left by an earlier try"
        )
        if self._stopped:
            raise AirflowException(f"node {self.node.name!r}: {STOPPED}; the container was not started")
        self.log.info("Running node %s: %s", self.node.name, prepared.script)
        run = self._run_container(context)
        run.log_lines = prepared.variables.redacted(run.log_lines)  # metadata, messages: no secret
        logged = len(prepared.log)
        manifest = finish(prepared, exit_code=run.exit_code, log_lines=run.log_lines, status=run.status)
        self._log(prepared.log[logged:])
        if run.failure is not None or self._stopped:
            self._fail(context, prepared, manifest, run)
        assets.emit(context, self.project_name, prepared.published)
        if gate:
            gate.record(manifest)
        if run.stop_condition and self._stop_watch and self._stop_watch.held == self._task_condition:
            control_tasks.stop_siblings(self, context, f"task {self._stop_watch.reason}")
        if valohai_settings().clean_work_dirs:
            shutil.rmtree(prepared.workdir.root, ignore_errors=True)
        control_tasks.after_success(self, context, self.node, manifest)
        return manifest

    def _log(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.log.info("%s", line)

    def _run_container(self, context: Any) -> _ContainerRun:
        """Run the container through DockerOperator, guarded (`container_guard`) and watched
        (`no-output-timeout`); it is removed afterwards whatever happened."""
        guard = container_guard.start(self.container_name or "", self.engine.url)
        watchdog = _SilenceWatchdog(self, self.no_output_timeout) if self.no_output_timeout else None
        self.container = None  # type: ignore[assignment]  # DockerOperator sets it once this try's container exists
        conditions = [c for c in (self._step_condition, self._task_condition) if c]
        self._stop_watch = StopWatch(*conditions) if conditions else None
        run = _ContainerRun()
        try:
            lines = super().execute(context)
            run.log_lines = [str(line) for line in lines] if isinstance(lines, list) else []
            run.exit_code = 0
        except DockerContainerFailedException as error:
            run.failure = error
            run.log_lines = [str(line) for line in error.logs or []]
            run.exit_code = _exit_code(error)
        except AirflowTaskTimeout as error:
            run.failure = error
        except DockerAPIError as error:
            if not self._stopped:  # on_kill removed the container under the engine's /wait (a 404)
                self._raise_if_image_missing(error)
                self._raise_if_no_gpus(error)
                self._raise_if_no_network(error)
                raise
            run.failure = error
        finally:
            if watchdog:
                watchdog.stop()
            try:
                run.oom_killed, logged = self._remove_container(
                    want_logs=run.failure is not None and not run.log_lines
                )
            finally:
                container_guard.stop(guard)
        run.log_lines = run.log_lines or logged
        run.silent = bool(watchdog and watchdog.fired)
        if (
            self._stop_watch is not None
            and self._stop_watch.reason
            and not self._stopped
            and not run.timed_out
        ):
            run.failure, run.stop_condition = None, self._stop_watch.reason  # stopped as asked: a success
        run.stopped = self._stopped and not run.timed_out
        return run

    def _fail(
        self, context: Any, prepared: PreparedExecution, manifest: dict[str, Any], run: _ContainerRun
    ) -> NoReturn:
        """Fail the task with what happened, the outputs still collected and the log's last lines."""
        tail = "\n".join(run.log_lines[-TAIL_LINES:])
        reason = STOPPED if run.stopped else f"the step {self._failure_reason(run)}"
        message = (
            f"node {self.node.name!r}: {reason}. "
            f"Outputs were still collected ({len(manifest.get('outputs', []))} file(s)); work dir kept at "
            f"{prepared.workdir.root}." + (f" Last lines:\n{tail}" if tail else "")
        )
        control_tasks.after_failure(self, context, self.node, manifest, message)
        if run.timed_out:
            raise AirflowTaskTimeout(message) from run.failure  # the same kind of failure for Airflow
        raise AirflowException(message) from (None if run.stopped else run.failure)  # not the engine's 404

    def _image_id(self) -> str | None:
        """The engine's id of the step's image, for reuse keys; None while it is not pulled yet."""
        try:
            return self.engine.image_id(self.image)
        except EngineError:
            return None

    def _failure_reason(self, run: _ContainerRun) -> str:
        if run.timed_out:
            seconds = self.execution_timeout.total_seconds() if self.execution_timeout else 0
            return (
                f"reached its time-limit of {seconds:g} s (Airflow execution_timeout) and was stopped; "
                "raise `time-limit` in valohai.yaml if it needs longer"
            )
        if run.silent:
            return (
                f"printed no output for {self.no_output_timeout} s (no-output-timeout) and was stopped; "
                "make it log progress or raise `no-output-timeout` in valohai.yaml"
            )
        if run.oom_killed:
            machine = self.node.machine
            if machine.memory is not None:
                memory = f"its limit of {size_text(machine.memory)} ({machine.memory_from}); raise that limit"
            else:
                memory = (
                    "the memory of the host (no limit is set: neither `resources.memory` of the step nor "
                    "`memory` of its environment in valohai-airflow.yaml); give it a bigger machine"
                )
            return (
                f"was killed for running out of memory (exit code {run.exit_code}): it needed more than {memory} "
                "or make the step use less"
            )
        return f"exited with code {run.exit_code}"

    def _remove_container(self, *, want_logs: bool) -> tuple[bool, list[str]]:
        """Read the OOM flag (and the log, when the run was cut short) and then force-remove this
        try's container, whatever happened: none may outlive its task. After a SIGTERM `on_kill`
        has removed it already (unless it came before the container existed): nothing to read."""
        if self.container is None:
            return False, []
        container_id = self.container["Id"]
        oom_killed, lines = False, []
        try:
            if not self._stopped:
                oom_killed = self.engine.inspect(container_id).oom_killed
                if want_logs:
                    lines = self.engine.logs(container_id).splitlines()
        except EngineError as error:
            self.log.info("Container %s not inspectable: %s", container_id[:12], error)
        force_remove(self.engine, container_id, self.log, quiet=self._stopped)
        return oom_killed, lines

    def _raise_if_image_missing(self, error: DockerAPIError) -> None:
        """A failed pull (no registry, a typo) surfaces as a bare 500/404 from the engine: name the cause."""
        if self._image_id() is not None:
            return
        assert self.node.step is not None
        raise AirflowException(
            f"node {self.node.name!r}: image {self.image!r} is not on this Docker engine and could not be "
            f"pulled ({error.explanation or error}). Build or load it on the worker (`docker pull` / "
            f"`docker load`), or fix `image:` of step {self.node.step.name!r} in valohai.yaml; "
            "the container was not started"
        ) from error

    def _raise_if_no_gpus(self, error: DockerAPIError) -> None:
        """An engine without the NVIDIA runtime refuses to start a container with a GPU request."""
        machine = self.node.machine
        text = str(error.explanation or error)
        if machine.gpus is None or "device driver" not in text:
            return
        serving = f" that serves queue {machine.queue!r}" if machine.queue else ""
        raise AirflowException(
            f"node {self.node.name!r}: environment {machine.environment!r} asks for "
            f"{'all GPUs' if machine.gpus == 'all' else f'{machine.gpus} GPU(s)'} (`gpus` in valohai-airflow.yaml), "
            f"but the Docker engine of this worker cannot give them ({text}). Run it on a worker with GPUs and "
            f"the NVIDIA Container Toolkit{serving}, or drop `gpus`; "
            "the container did not start"
        ) from error

    def _raise_if_no_network(self, error: DockerAPIError) -> None:
        """A network the engine does not know fails the container's start with a bare 404."""
        text = str(error.explanation or error)
        if self.network_mode is None or f"network {self.network_mode} not found" not in text:
            return
        raise AirflowException(
            f"node {self.node.name!r}: the Docker engine of this worker has no network {self.network_mode!r}, "
            f"which {self._network_from} asks for ({text}). Create it on the host (`docker network create "
            f"{self.network_mode}`) or pick one `docker network ls` lists; the container did not start"
        ) from error

    def on_kill(self) -> None:
        """Force-remove at once: Docker's 10 s stop grace outlives the supervisor's 5 s SIGKILL. Called
        on SIGTERM, after which `execute` goes on: it stores the outputs written so far and fails as
        stopped."""
        self._stopped = True
        if self.container is None or not self.hook.client_created:
            return
        force_remove(self.engine, self.container["Id"], self.log, "the task was stopped")


def worker_hostname() -> str:
    """This worker's Airflow hostname (`[core] hostname_callable`), the one its task instances show."""
    return str(get_hostname())  # type: ignore[no-untyped-call]


def upstream_values(
    context: Any, task: BaseOperator, pipeline: PipelinePlan, node: NodePlan
) -> dict[str, Any]:
    """The XCom values of this run's upstream nodes whose edges carry something (a task node's:
    the list of its executions' manifests); inside a task group, under `task`'s group prefix."""
    ti = context["ti"]
    sources = {
        e.source_node
        for e in node.sources.edges
        if e.source_kind is not EdgeKind.DEPENDENCY and e.target_kind is not EdgeKind.DEPENDENCY
    }
    return {
        name: ti.xcom_pull(task_ids=sibling_task_id(task, pipeline.node(name).task_id))
        for name in sorted(sources)
    }


def _run_started(context: Any) -> datetime:
    """When this dag run started (what reuse compares finish times with); now if Airflow has none."""
    started = getattr(context.get("dag_run"), "start_date", None)
    return started if isinstance(started, datetime) else datetime.now(UTC)


def _execution_labels(key: ExecutionKey) -> dict[str, str]:
    """The container labels that name one execution of a node in a run, whatever its try."""
    return {
        f"{LABEL}.dag": key.dag_id,
        f"{LABEL}.run": key.run_id,
        f"{LABEL}.node": key.node,
        f"{LABEL}.map_index": str(key.map_index),
    }


def container_limits(machine: MachinePlan) -> dict[str, Any]:
    """DockerOperator's arguments for a node's container limits. Its `cpus` is only a relative weight
    (cpu_shares); the hard quota is added to the host config by `HostConfigClient`."""
    limits: dict[str, Any] = {}
    if machine.cpus is not None:
        limits["cpus"] = machine.cpus
    if machine.memory is not None:
        limits["mem_limit"] = machine.memory
    if machine.shm_size is not None:
        limits["shm_size"] = machine.shm_size
    if machine.gpus is not None:
        limits["device_requests"] = gpu_requests(str(machine.gpus))
    return limits


@dataclass
class _ContainerRun:
    """How one run of the node's container went."""

    stopped: bool = False  # SIGTERM (on_kill), not a time-out
    failure: BaseException | None = None
    log_lines: list[str] = field(default_factory=list)
    exit_code: int | None = None
    oom_killed: bool = False
    silent: bool = False  # the no-output watchdog stopped it
    stop_condition: str | None = None  # the step's stop-condition held and stopped it (a success)

    @property
    def timed_out(self) -> bool:
        return isinstance(self.failure, AirflowTaskTimeout)

    @property
    def status(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.stopped or self.silent or self.stop_condition:
            return "stopped"
        return "failed" if self.failure else "completed"


def _exit_code(error: DockerContainerFailedException) -> int | None:
    text = str(error)
    marker = "'StatusCode': "
    if marker in text:
        digits = text.split(marker, 1)[1].split("}", 1)[0].split(",", 1)[0]
        if digits.strip().lstrip("-").isdigit():
            return int(digits)
    return None


class _SilenceWatchdog:
    """Stops the container when it has printed nothing for `timeout` seconds (`no-output-timeout`)."""

    def __init__(self, operator: ValohaiExecutionOperator, timeout: int) -> None:
        self.operator = operator
        self.timeout = timeout
        self.fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="valohai-no-output-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.time()
        poll = max(0.5, min(5.0, self.timeout / 4))
        while not self._stop.wait(poll):
            container = self.operator.container
            if container is None:
                started = time.time()
                continue
            try:
                printed = self.operator.engine.last_output_at(container["Id"])
                last = printed.timestamp() if printed else started
                if datetime.now(UTC).timestamp() - last > self.timeout:
                    self.fired = True
                    self.operator.log.error("No output for %s s: stopping the container", self.timeout)
                    self.operator.engine.kill(container["Id"])
                    return
            except EngineError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class FailWithMessageOperator(BaseOperator):
    """A task that fails with a fixed, user-facing message (a broken valohai.yaml, an unsupported node)."""

    ui_color = "#f4a6a6"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowException(self.message)
