"""`valohai-airflow run | outputs | logs | stop`: run a step, task blueprint or pipeline from the
terminal, the way `vh exec run` / `vh pipeline run` do, through Airflow's REST API (client.py) or,
with `--local`, without any Airflow service (local_run.py).

A run is named `DAG_ID/RUN_ID` (Airflow's run ids are unique per DAG); `run` prints it. Exit status:
0 when the run succeeded, 1 when it failed, 2 for bad arguments or an Airflow that cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from valohai_airflow.client import AirflowClient, ClientError, NodeState
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import DagKind
from valohai_airflow.runtime.manifest import Manifest, load_manifest
from valohai_airflow.runtime.reuse_nodes import ReuseRequest
from valohai_airflow.sizes import size_text
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.store.resolver import StoreResolver

COMMANDS = ("run", "outputs", "logs", "stop")


def add_parsers(commands: Any) -> None:
    """The `run`, `outputs`, `logs` and `stop` subcommands, added to the main parser's."""
    run = commands.add_parser("run", help="run a step, task blueprint or pipeline (exit 1 if it fails)")
    run.add_argument("path", help="a project folder or its valohai.yaml")
    chosen = run.add_mutually_exclusive_group(required=True)
    chosen.add_argument("step", nargs="?", help="the step to run")
    chosen.add_argument("--pipeline", help="run this pipeline")
    chosen.add_argument("--task", help="run this task blueprint")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--input", "-i", action="append", default=[], metavar="NAME=URL")
    run.add_argument(
        "--var", "-v", action="append", default=[], metavar="NAME=VALUE", help="environment variable"
    )
    run.add_argument("--title", help="the run's note in Airflow")
    run.add_argument("--watch", "-w", action="store_true", help="show node states and log lines as they come")
    run.add_argument("--download", metavar="DIR", type=Path, help="download the outputs here when done")
    run.add_argument("--detach", action="store_true", help="trigger and exit without waiting")
    run.add_argument(
        "--local", action="store_true", help="run here with dag.test(), without any Airflow service"
    )
    run.add_argument(
        "--project",
        metavar="NAME",
        help="the project's name in Airflow: its folder's path below the dags folder, `/` as `__` "
        "(default: PATH's folder name; for a working tree named otherwise)",
    )
    run.add_argument(
        "--adhoc",
        action="store_true",
        help="run the working tree as it is now: a snapshot goes to the store, the nodes run it",
    )
    run.add_argument(
        "--adhoc-max-size",
        metavar="SIZE",
        help="refuse an --adhoc tree above this size, e.g. 2g (default 500m; VALOHAI_AIRFLOW_ADHOC_MAX_SIZE)",
    )
    run.add_argument(
        "--store",
        metavar="URL",
        help="the artefact store for --adhoc (default: Airflow's [valohai] store_url)",
    )
    run.add_argument(
        "--reuse-from",
        metavar="RUN_ID",
        help="an earlier run of the same DAG (RUN_ID or DAG_ID/RUN_ID) whose nodes to reuse",
    )
    run.add_argument(
        "--reuse", action="append", default=[], metavar="NODE", help="reuse this node of --reuse-from"
    )
    run.add_argument(
        "--reuse-upstream-of",
        action="append",
        default=[],
        metavar="NODE",
        help="reuse every node this node depends on (directly or not) from --reuse-from",
    )

    outputs = commands.add_parser("outputs", help="list (or download) a run's outputs")
    outputs.add_argument(
        "run", metavar="DAG_ID/RUN_ID", help="with --execution: DAG_ID alone searches its latest runs"
    )
    which = outputs.add_mutually_exclusive_group()
    which.add_argument("--node", help="only this node")
    which.add_argument("--execution", metavar="ID", help="only this Valohai execution id (VH_EXECUTION_ID)")
    outputs.add_argument("--download", metavar="DIR", type=Path)
    logs = commands.add_parser("logs", help="a node's log")
    logs.add_argument("run", metavar="DAG_ID/RUN_ID")
    logs.add_argument("--node", required=True)
    stop = commands.add_parser("stop", help="stop a run (or one node): mark it failed")
    stop.add_argument("run", metavar="DAG_ID/RUN_ID")
    stop.add_argument("--node")


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; a user error is one line on stderr and exit status 2."""
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "outputs" and args.execution:
            return _execution_outputs(args.run, args.execution, args.download)
        dag_id, run_id = _run_ref(args.run)
        with AirflowClient() as client:
            if args.command == "outputs":
                return _outputs(client, dag_id, run_id, args.node, args.download)
            if args.command == "logs":
                for line in client.logs(dag_id, run_id, args.node):
                    print(line)
                return 0
            client.stop(dag_id, run_id, args.node)
            print(f"stopped {args.node + ' of ' if args.node else ''}{dag_id}/{run_id}")
            return 0
    except (ValohaiAirflowError, ValohaiSpecError) as error:
        print(f"valohai-airflow {args.command}: {error}", file=sys.stderr)
        return 2


def _run_ref(text: str) -> tuple[str, str]:
    dag_id, sep, run_id = text.partition("/")
    if not sep or not dag_id or not run_id:
        raise ClientError(f"{text!r} is not DAG_ID/RUN_ID", hint="`valohai-airflow run` prints it")
    return dag_id, run_id


def _run(args: argparse.Namespace) -> int:
    from valohai_airflow.run_conf import RunArgumentError, build_conf, resolve_target

    if args.project and args.local:
        raise RunArgumentError(
            "--project names a project deployed in Airflow; --local runs the folder under its own name",
            hint="drop --project, or run against Airflow without --local",
        )
    if args.pipeline:
        target = resolve_target(args.path, args.pipeline, DagKind.PIPELINE, args.project)
    elif args.task:
        target = resolve_target(args.path, args.task, DagKind.TASK, args.project)
    else:
        target = resolve_target(args.path, args.step, DagKind.STEP, args.project)
    conf = build_conf(target.plan, parameters=args.param, inputs=args.input, variables=args.var)
    reuse = _reuse_request(target.dag_id, args)
    if reuse is not None:
        reuse.conf(target.plan)  # checked against the plan before anything is sent or started
    if args.adhoc and args.local:
        print(
            "valohai-airflow run: --local runs the working tree already; --adhoc adds nothing",
            file=sys.stderr,
        )
    elif args.adhoc:
        conf.update(_send_adhoc(Path(target.project.source).resolve().parent, args))
    if args.local:
        local_conf = {**conf, **(reuse.conf(target.plan) if reuse else {})}
        return _run_local(target.project.source, target.dag_id, local_conf, args)
    with AirflowClient() as client:
        run_id = client.trigger(target.dag_id, conf, title=args.title, reuse=reuse, plan=target.plan)
        print(f"started {target.dag_id}/{run_id}", flush=True)
        if args.detach:
            return 0
        state = client.wait(
            target.dag_id, run_id, on_progress=Progress(client, target.dag_id, run_id, args.watch)
        )
        print(f"{target.dag_id}/{run_id}: {state}")
        manifests = client.manifests(target.dag_id, run_id)
        _show(manifests)
        if args.download:
            _download(client.stores, manifests, args.download)
    return 0 if state == "success" else 1


def _send_adhoc(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Snapshot the working tree into the store (checked against the size limit first: above it
    nothing is uploaded or triggered); the run conf entry naming it."""
    from valohai_airflow.client import ClientSettings
    from valohai_airflow.run_conf import RunArgumentError
    from valohai_airflow.runtime.adhoc import DEFAULT_MAX_SIZE, send_working_tree
    from valohai_airflow.spec.sidecar import parse_size

    given = args.adhoc_max_size or ClientSettings.load().adhoc_max_size
    try:
        limit = parse_size(given) if given else DEFAULT_MAX_SIZE
    except ValueError as error:  # parse_size's pydantic error: its message says what a size is
        raise RunArgumentError(f"--adhoc-max-size {given!r}: {error}") from None
    from valohai_airflow.data import resolve_stores

    store = resolve_stores(args.store or None).store
    sent = send_working_tree(root, store, limit)
    done = "uploaded to" if sent.uploaded else "already in the store at"
    print(
        f"ad hoc code {sent.commit} ({sent.files} files, {size_text(sent.size)}): {done} {sent.uri}",
        flush=True,
    )
    return sent.conf


def _reuse_request(dag_id: str, args: argparse.Namespace) -> ReuseRequest | None:
    """`--reuse-from` with `--reuse`/`--reuse-upstream-of`; a source run of another DAG is refused."""
    from valohai_airflow.run_conf import RunArgumentError

    if not args.reuse_from:
        if args.reuse or args.reuse_upstream_of:
            raise RunArgumentError(
                "--reuse/--reuse-upstream-of name nodes but --reuse-from names no run",
                hint="give the run whose nodes to reuse: --reuse-from RUN_ID",
            )
        return None
    source_dag, _, run_id = args.reuse_from.rpartition("/")
    if source_dag and source_dag != dag_id:
        raise RunArgumentError(
            f"--reuse-from {args.reuse_from!r}: a run of {source_dag}, not of {dag_id}",
            hint="nodes are reused from an earlier run of the same DAG",
        )
    return ReuseRequest(run_id, tuple(args.reuse), tuple(args.reuse_upstream_of))


def _run_local(valohai_yaml: str, dag_id: str, conf: dict[str, Any], args: argparse.Namespace) -> int:
    from valohai_airflow.local_run import local_store, run_local

    log = None if args.watch else local_store().parent / "local-logs" / f"{dag_id}.log"
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {dag_id} locally (dag.test()); Airflow's log: {log}", flush=True)
    state, tasks, raw = run_local(Path(valohai_yaml), dag_id, conf, log=log)
    for task, task_state in tasks.items():
        print(f"  {task}: {task_state}")
    print(f"{dag_id} (local, outputs in {local_store()}): {state}")
    stores = StoreResolver()
    manifests = [load_manifest(m, stores) for m in raw]
    _show(manifests)
    if args.download:
        _download(stores, manifests, args.download)
    return 0 if state == "success" else 1


ENDED = frozenset({"success", "failed"})  # states of a try that ran: its whole log is there


class Progress:
    """Prints each node state change; with `watch`, also the new log lines of every started node."""

    def __init__(self, client: AirflowClient, dag_id: str, run_id: str, watch: bool) -> None:
        self.client, self.dag_id, self.run_id, self.watch = client, dag_id, run_id, watch
        self.states: dict[tuple[str, int], str | None] = {}
        self.printed: dict[tuple[str, int, int], int] = {}

    def __call__(self, nodes: list[NodeState]) -> None:
        for node in nodes:
            key = (node.task_id, node.map_index)
            name = node.task_id if node.map_index < 0 else f"{node.task_id}[{node.map_index}]"
            ended_now = node.state in ENDED and self.states.get(key) != node.state  # also between two polls
            if self.watch and node.try_number > 0 and (node.state == "running" or ended_now):
                self._log(node, name)
            if self.states.get(key, "") != node.state and node.state is not None:
                print(f"  {name}: {node.state}", flush=True)
            self.states[key] = node.state

    def _log(self, node: NodeState, name: str) -> None:
        lines = self.client.log_lines(self.dag_id, self.run_id, node)
        key = (node.task_id, node.map_index, node.try_number)
        for line in lines[self.printed.get(key, 0) :]:
            print(f"  {name} | {line}", flush=True)
        self.printed[key] = len(lines)


def _show(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        where = manifest.node if manifest.map_index < 0 else f"{manifest.node}[{manifest.map_index}]"
        print(f"  {where} (execution {manifest.execution_id}): {manifest.status}")
        for output in manifest.outputs:
            print(f"    {output.path}  {output.uri}")


def _download(stores: StoreResolver, manifests: list[Manifest], dest: Path) -> None:
    from valohai_airflow.client import download_outputs

    written = download_outputs(stores, manifests, dest)
    print(f"downloaded {len(written)} file(s) to {dest}")


def _outputs(client: AirflowClient, dag_id: str, run_id: str, node: str | None, dest: Path | None) -> int:
    manifests = client.manifest(dag_id, run_id, node) if node else client.manifests(dag_id, run_id)
    _show(manifests)
    if dest:
        _download(client.stores, manifests, dest)
    return 0


def _execution_outputs(ref: str, execution_id: str, dest: Path | None) -> int:
    """`outputs DAG_ID[/RUN_ID] --execution ID`: the execution among the run's (or the DAG's latest
    runs') manifests; VH_EXECUTION_ID is a hash, so it is looked up, not parsed."""
    dag_id, _, run_id = ref.partition("/")
    if not dag_id:
        raise ClientError(f"{ref!r} is not DAG_ID or DAG_ID/RUN_ID")
    with AirflowClient() as client:
        if run_id:
            found = [m for m in client.manifests(dag_id, run_id) if m.execution_id == execution_id]
            if not found:
                raise ClientError(f"run {run_id} of {dag_id} has no execution {execution_id}")
            manifest = found[0]
        else:
            manifest = client.find_execution(dag_id, execution_id)
        _show([manifest])
        if dest:
            _download(client.stores, [manifest], dest)
    return 0
