"""Scale-out for real: the CeleryExecutor with Redis and Postgres, nodes on two workers.

tests/e2e/cluster.py starts, on 127.0.0.1 only: Postgres (metadata DB, Celery result backend),
Redis (broker), SeaweedFS (the S3 store), the API server, scheduler and DAG processor, and two
Celery workers `worker-a` (queues default, machine-a) and `worker-b` (default, machine-b), each with
its own AIRFLOW_HOME, work dir, input cache and Docker engine: nothing shared but Postgres, Redis,
S3 and the dags folder. A step's Valohai `environment` routes its nodes to a queue.

- The example project's two pipelines run side by side, every edge crossing from one worker to
  the other; outputs reach the other worker through S3 only; the REST API says which worker ran
  which node.
- A worker SIGKILLed in the middle of a node: the task is retried on the other worker and the run
  finishes; the container the dead worker left is gone once the worker is back; the killed try left
  no manifest.
- Redis restarted in the middle of a run: the run still ends, successfully.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.cluster import Cluster, Engine, Postgres, Redis, Worker, secrets_env, services_missing
from tests.e2e.conftest import (
    LABEL,
    PYTHON_IMAGE,
    START_TIMEOUT,
    AirflowServer,
    _environment,
    _stop,
    free_port,
    start_component,
    wait_for,
)
from tests.support.seaweed import SeaweedServer, make_bucket
from valohai_airflow.runtime.ids import ExecutionKey

BUCKET = "valohai-e2e"
BUSYBOX_IMAGE = "valohai-airflow/busybox:1"
QUEUES = {"a": ("default", "machine-a"), "b": ("default", "machine-b")}
# the example's steps, each on one machine: every edge of both pipelines goes from one worker to the other
STEP_MACHINE = {"preprocess": "a", "train": "b", "evaluate": "a", "pick-best": "b", "compare": "a"}
CENTRAL = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
IDENTITY = """\
import os


def hostname():
    return os.environ["VH_E2E_HOSTNAME"]
"""
# the sidecar's environments: a step's Valohai `environment` (its machine type) → an Airflow queue
SIDECAR = """\
environments:
  e2e-machine-a:
    queue: machine-a
  e2e-machine-b:
    queue: machine-b
pipelines:
%(pipelines)s
"""
FAULTS = """\
- step:
    name: produce
    image: valohai-airflow/busybox:1
    environment: e2e-machine-a
    command:
      - sleep %(produce)s
      - echo survives > /valohai/outputs/data.txt
- step:
    name: slow
    image: valohai-airflow/busybox:1
    command:
      - sleep %(sleep)s
      - cp /valohai/inputs/data/data.txt /valohai/outputs/copied.txt
    inputs:
      - name: data
- step:
    name: check
    image: valohai-airflow/busybox:1
    environment: e2e-machine-b
    command: grep -q survives /valohai/inputs/copied/copied.txt && echo ok > /valohai/outputs/ok.txt
    inputs:
      - name: copied
- pipeline:
    name: survive
    nodes:
      - {name: produce, type: execution, step: produce}
      - {name: slow, type: execution, step: slow}
      - {name: check, type: execution, step: check}
    edges:
      - [produce.output.data.txt, slow.input.data]
      - [slow.output.copied.txt, check.input.copied]
"""
SUMMARY: dict[str, Any] = {}


def _s3_client(cluster: Cluster) -> Any:
    endpoint = cluster.s3.endpoint
    return boto3.client(
        "s3",
        endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )


@pytest.fixture(scope="module")
def cluster(artefacts_dir: Path) -> Iterator[Cluster]:
    missing = services_missing()
    if missing:
        pytest.skip(f"the Celery test needs Postgres, Redis and dockerd: {missing}")
    for image in (PYTHON_IMAGE, BUSYBOX_IMAGE):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            pytest.fail(f"image {image} missing: run `make images`")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vh-e2e-celery-"))
    root.chmod(0o755)  # the postgres user reaches its cluster dir below
    logs = artefacts_dir / "celery"
    logs.mkdir(exist_ok=True)
    home = root / "central"
    (home / "dags").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", home / "dags" / "valohai_dags.py")
    server = AirflowServer(home=home, port=free_port(), logs=logs)
    cluster = Cluster(root=root, server=server, postgres=Postgres(root), redis=Redis(root))
    engines = cluster.engines = {name: Engine(root, name) for name in QUEUES}
    seaweed = SeaweedServer()
    group = 0
    try:
        images = root / "images.tar"
        subprocess.run(["docker", "save", "-o", str(images), PYTHON_IMAGE, BUSYBOX_IMAGE], check=True)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            jobs = [pool.submit(engine.start, images) for engine in engines.values()]
            jobs += [pool.submit(cluster.postgres.start), pool.submit(cluster.redis.start)]
            endpoint = seaweed.start()
            cluster.s3 = seaweed
            make_bucket(endpoint, BUCKET)
            for job in jobs:
                job.result()
        images.unlink()
        print(
            f"celery cluster: postgres, redis, seaweedfs, 2 engines after {time.monotonic() - started:.0f} s"
        )

        identity = root / "python"  # two "machines" on one host need hostnames of their own
        identity.mkdir()
        (identity / "vh_e2e_identity.py").write_text(IDENTITY)
        shared = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(server.dags_folder),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cluster.postgres.url,
            "AIRFLOW__CELERY__BROKER_URL": cluster.redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{cluster.postgres.url}",
            "AIRFLOW__VALOHAI__STORE_URL": f"s3://{BUCKET}/store",
            "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": endpoint.endpoint_url,
            "AWS_ACCESS_KEY_ID": endpoint.access_key,
            "AWS_SECRET_ACCESS_KEY": endpoint.secret_key,
            "AWS_DEFAULT_REGION": endpoint.region,
            "PYTHONPATH": str(identity),
            "AIRFLOW__API__WORKERS": "1",
            **secrets_env(),
        }
        central = {
            **_environment(home, server.port),
            **shared,
            # a task whose worker died is failed (and retried) after 30 s without its heartbeat
            # (tasks heartbeat every 5 s; 300 s by default)
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__CORE__PARALLELISM": "8",
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        migrate = subprocess.run([airflow, "db", "migrate"], env=central, cwd=home, capture_output=True)
        assert migrate.returncode == 0, migrate.stdout.decode(errors="replace")[-3000:]
        for name, command in CENTRAL.items():
            log_file = logs / f"airflow-{name}.log"
            process = start_component(command, home=home, env=central, log_file=log_file, group=group)
            server.processes[name] = process
            group = group or process.pid
        for name, engine in engines.items():
            worker_home = root / f"worker-{name}"
            worker_home.mkdir()
            env = {
                **_environment(worker_home, server.port),
                **shared,
                "AIRFLOW__VALOHAI__WORK_DIR": str(worker_home / "work"),
                "AIRFLOW__VALOHAI__INPUT_CACHE_DIR": str(worker_home / "cache"),
                "AIRFLOW__VALOHAI__DOCKER_URL": engine.url,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "vh_e2e_identity.hostname",
                "VH_E2E_HOSTNAME": f"worker-{name}",
                "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps(
                    {"imports": ["valohai_airflow.airflow.worker"]}
                ),
            }
            worker = Worker(name, QUEUES[name], worker_home, engine, env, logs / f"airflow-worker-{name}.log")
            cluster.workers[name] = worker
        wait_for(
            "the API server to answer /api/v2/version",
            lambda: httpx.get(f"{server.base_url}/api/v2/version", timeout=5).status_code == 200,
            START_TIMEOUT,
            server,
        )
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for job in [pool.submit(w.start, server) for w in cluster.workers.values()]:
                job.result()
        SUMMARY["start_seconds"] = round(time.monotonic() - started)
        print(f"celery cluster ready after {SUMMARY['start_seconds']} s: {server.base_url}, root {root}")
        yield cluster
    finally:
        if server.processes:
            with contextlib.suppress(httpx.HTTPError, KeyError, OSError):
                server.run_ids = sorted({*server.run_ids, *(run["dag_run_id"] for run in server.runs())})
        stopping = time.monotonic()
        if group or server.processes:
            _stop(server, group or next(iter(server.processes.values())).pid)
        SUMMARY["stop_airflow_seconds"] = round(time.monotonic() - stopping)
        left = {}
        for name, engine in engines.items():
            if engine.process is not None and engine.process.poll() is None:
                left[name] = server.containers_of_our_runs(engine.url)
        stops: dict[str, float] = {}
        failed_stops: dict[str, str] = {}
        for name, stop in [
            *((f"engine-{n}", e.stop) for n, e in engines.items()),
            ("redis", cluster.redis.stop),
            ("postgres", cluster.postgres.stop),
            ("seaweedfs", seaweed.stop),
        ]:
            began = time.monotonic()
            try:
                stop()
            except Exception as error:  # stop the others all the same; fail below
                failed_stops[name] = repr(error)
            stops[name] = round(time.monotonic() - began, 1)
        SUMMARY["stop_seconds"] = stops
        (logs / "summary.json").write_text(json.dumps(SUMMARY, indent=2))
        print(f"celery summary: {json.dumps(SUMMARY)}")
        shutil.rmtree(root, ignore_errors=True)
        assert not any(left.values()), f"containers left behind on the workers' engines: {left}"
        assert not failed_stops, f"could not stop: {failed_stops}"


def _routed_example(project: Path) -> None:
    """The example project with each step given a Valohai environment (its machine) and retries."""
    text = (REPO_ROOT / "dags" / "example" / "valohai.yaml").read_text()
    for step, machine in STEP_MACHINE.items():
        anchor = f"    name: {step}\n    image: valohai-airflow/python:3.11\n"
        assert anchor in text, step
        text = text.replace(anchor, f"{anchor}    environment: e2e-machine-{machine}\n")
    (project / "valohai.yaml").write_text(text)
    (project / "valohai-airflow.yaml").write_text(
        SIDECAR
        % {
            "pipelines": "\n".join(
                f"  {p}:\n    retries: 1\n    retry_delay_seconds: 2"
                for p in ("three-trainings", "learning-rate-sweep")
            )
        }
    )


def _expected_machine(task_id: str) -> str | None:
    step = re.sub(r"-(slow|medium|fast)$", "", task_id)
    return STEP_MACHINE.get(step)


def _check_in_s3(cluster: Cluster, files: list[dict[str, Any]]) -> None:
    client = _s3_client(cluster)
    for entry in files:
        assert entry["uri"].startswith(f"s3://{BUCKET}/store/"), entry
        key = entry["uri"].removeprefix(f"s3://{BUCKET}/")
        data = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["uri"]


def _duration(item: dict[str, Any]) -> float:
    from datetime import datetime

    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    return round((parse(item["end_date"]) - parse(item["start_date"])).total_seconds(), 1)


def test_example_pipelines_spread_over_two_workers(cluster: Cluster) -> None:
    server = cluster.server
    project = server.dags_folder / "example"
    project.mkdir()
    for item in (REPO_ROOT / "dags" / "example").iterdir():
        if item.name not in ("valohai.yaml", "valohai-airflow.yaml"):
            (shutil.copytree if item.is_dir() else shutil.copy)(item, project / item.name)
    _routed_example(project)
    dag_ids = ["example__three-trainings", "example__learning-rate-sweep"]
    for dag_id in dag_ids:
        server.wait_for_dag(dag_id)
    started = time.monotonic()
    runs = {dag_id: server.trigger(dag_id, {}) for dag_id in dag_ids}
    for dag_id, run_id in runs.items():
        run = server.wait_for_run(dag_id, run_id)
        assert run["state"] == "success", cluster.diagnosis(dag_id, run_id)
    SUMMARY["example_wall_seconds"] = round(time.monotonic() - started)

    placement: dict[str, dict[str, Any]] = {}
    for dag_id, run_id in runs.items():
        run = server.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        placement[dag_id] = {"run_seconds": _duration(run), "nodes": {}}
        for ti in cluster.task_instances(dag_id, run_id):
            name = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
            placement[dag_id]["nodes"][name] = {
                "hostname": ti["hostname"],
                "queue": ti["queue"],
                "try": ti["try_number"],
                "seconds": _duration(ti),
            }
            # a queue machine-x is served by worker-x alone, the default queue by both
            served_by = {
                "default": ("worker-a", "worker-b"),
                **{f"machine-{m}": (f"worker-{m}",) for m in QUEUES},
            }
            assert ti["hostname"] in served_by[ti["queue"]], ti
            machine = _expected_machine(ti["task_id"])
            if machine is not None:  # an execution (not a task node's __variants task): on its machine
                assert (ti["hostname"], ti["queue"]) == (f"worker-{machine}", f"machine-{machine}"), ti
    SUMMARY["example"] = placement
    print(json.dumps(placement, indent=1))

    # every file a node read came from S3, written there by a node on the other worker
    dag_id, run_id = "example__three-trainings", runs["example__three-trainings"]
    preprocess = server.xcom(dag_id, run_id, "preprocess")
    fast = server.xcom(dag_id, run_id, "train-fast")
    best = server.xcom(dag_id, run_id, "pick-best")
    train_npz = next(f for f in preprocess["outputs"] if f["path"] == "train.npz")
    assert fast["inputs"]["dataset"][0]["uri"] == train_npz["uri"]
    assert fast["inputs"]["dataset"][0]["sha256"] == train_npz["sha256"]
    assert fast["parameters"]["features"] == preprocess["metadata"]["features"]  # a metadata edge
    assert len(best["inputs"]["models"]) == 3
    for manifest in (preprocess, fast, best):
        _check_in_s3(cluster, manifest["outputs"])
        for files in manifest["inputs"].values():
            if files and files[0].get("uri", "").startswith("s3://"):
                _check_in_s3(cluster, files)
    for worker in cluster.workers.values():
        assert not worker.engine.containers(LABEL), worker.engine.containers(LABEL)
    assert {host for host, _ in cluster.listening()} == {"127.0.0.1"}, cluster.listening()


def _faults_project(cluster: Cluster, name: str, *, produce: int, sleep: int, retry_delay: int) -> str:
    project = cluster.server.dags_folder / name
    project.mkdir()
    (project / "valohai.yaml").write_text(FAULTS % {"produce": produce, "sleep": sleep})
    (project / "valohai-airflow.yaml").write_text(
        SIDECAR % {"pipelines": f"  survive:\n    retries: 1\n    retry_delay_seconds: {retry_delay}"}
    )
    dag_id = f"{name}__survive"
    cluster.server.wait_for_dag(dag_id)
    return dag_id


def test_worker_killed_mid_node_retried_on_the_other(cluster: Cluster) -> None:
    server = cluster.server
    dag_id = _faults_project(cluster, "faults", produce=0, sleep=12, retry_delay=2)
    started = time.monotonic()
    run_id = server.trigger(dag_id, {})
    first = cluster.wait_for_ti(
        dag_id, run_id, "slow", lambda ti: ti["state"] == "running" and bool(ti["hostname"]), "running"
    )
    victim = cluster.worker_by_hostname(first["hostname"])
    other = next(w for w in cluster.workers.values() if w is not victim)
    labels = (f"{LABEL}.run={run_id}", f"{LABEL}.node=slow")
    wait_for(
        f"slow's container on {victim.hostname}'s engine",
        lambda: any(c["state"] == "running" for c in victim.engine.containers(*labels)),
        120,
        server,
    )
    killed = victim.kill(server)
    killed_at = time.monotonic()
    # the container outlives its worker: nothing is left on that machine to stop it
    assert [c["state"] for c in victim.engine.containers(*labels)] == ["running"]

    retry = cluster.wait_for_ti(
        dag_id, run_id, "slow", lambda ti: ti["try_number"] == 2 and ti["state"] == "running", "retried"
    )
    detected = round(time.monotonic() - killed_at)
    assert retry["hostname"] == other.hostname, retry
    victim.start(server)  # the machine is back: its worker removes what its predecessor left
    assert victim.engine.containers(*labels) == [], victim.engine.containers(*labels)
    assert b"left by an earlier worker" in victim.log.read_bytes()

    run = server.wait_for_run(dag_id, run_id)
    assert run["state"] == "success", cluster.diagnosis(dag_id, run_id)
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id)}
    assert tis["slow"]["try_number"] == 2 and tis["slow"]["hostname"] == other.hostname, tis["slow"]
    slow = server.xcom(dag_id, run_id, "slow")
    assert slow["execution_id"] == ExecutionKey(dag_id, run_id, "slow", -1, 2).execution_id
    assert slow["exit_code"] == 0 and [f["path"] for f in slow["outputs"]] == ["copied.txt"]
    _check_in_s3(cluster, slow["outputs"])
    check = server.xcom(dag_id, run_id, "check")
    assert check["inputs"]["copied"][0]["uri"] == slow["outputs"][0]["uri"]
    # the killed try wrote nothing to the store: no manifest, no partial outputs
    first_try = ExecutionKey(dag_id, run_id, "slow", -1, 1).prefix
    listed = _s3_client(cluster).list_objects_v2(Bucket=BUCKET, Prefix=f"store/{first_try}")
    assert listed.get("KeyCount", 0) == 0, listed.get("Contents")
    for worker in cluster.workers.values():
        assert not worker.engine.containers(f"{LABEL}.run={run_id}")
    SUMMARY["worker_kill"] = {
        "killed": victim.hostname,
        "killed_pids": len(killed),
        "retried_on": retry["hostname"],
        "retry_running_after_kill_seconds": detected,
        "run_seconds": round(time.monotonic() - started),
        "nodes": {t: (ti["hostname"], ti["try_number"]) for t, ti in tis.items()},
    }


def test_redis_restarted_mid_run(cluster: Cluster) -> None:
    server = cluster.server
    # A task the scheduler hands to Celery while the broker is away fails at once (the
    # CeleryExecutor's "Error sending Celery task"): that costs it one try. A retry delay longer than
    # the broker's restart lets the retry find Redis back; tasks already running are not affected.
    dag_id = _faults_project(cluster, "broker", produce=8, sleep=4, retry_delay=20)
    started = time.monotonic()
    run_id = server.trigger(dag_id, {})
    cluster.wait_for_ti(dag_id, run_id, "produce", lambda ti: ti["state"] == "running", "running")
    cluster.redis.stop()
    stopped_at = time.monotonic()
    # while the broker is away, produce finishes and slow becomes due: the scheduler cannot send it
    cluster.wait_for_ti(dag_id, run_id, "produce", lambda ti: ti["state"] == "success", "done")
    time.sleep(5)
    cluster.redis.start()
    down = round(time.monotonic() - stopped_at)
    run = server.wait_for_run(dag_id, run_id)
    tis = {ti["task_id"]: ti for ti in cluster.task_instances(dag_id, run_id)}
    SUMMARY["redis_restart"] = {
        "redis_down_seconds": down,
        "run_state": run["state"],
        "run_seconds": round(time.monotonic() - started),
        "nodes": {t: (ti["hostname"], ti["try_number"], ti["state"]) for t, ti in tis.items()},
    }
    assert run["state"] == "success", cluster.diagnosis(dag_id, run_id)
    assert tis["produce"]["try_number"] == 1  # running while Redis was away, it just went on
