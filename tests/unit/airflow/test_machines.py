"""The airflow layer's share of `environments:`: each node task's queue, pool and pool_slots (also a
task node's mapped executions, also after serialization, which is what the scheduler routes by), the
container limits handed to DockerOperator, the hard CPU quota added to the host config, and the task
docs saying where the node waits."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from docker import APIClient
from docker.types import DeviceRequest

from valohai_airflow.airflow.factory import build_dag
from valohai_airflow.airflow.operators import ValohaiExecutionOperator
from valohai_airflow.engine.docker import HostConfigClient
from valohai_airflow.loading.project import clear_cache, compile_project

GiB = 1024**3

VALOHAI = textwrap.dedent(
    """
    - step:
        name: train
        image: busybox
        command: date
        environment: aws-eu-west-1-p3-2xlarge
    - step:
        name: plain
        image: busybox
        command: date
        inputs: [{name: x, optional: true}]
    - endpoint:
        name: predict
        image: busybox
        server-command: httpd -f
    - pipeline:
        name: p
        nodes:
          - {name: gpu, type: execution, step: train}
          - {name: sweep, type: task, step: train}
          - {name: small, type: execution, step: plain, override: {environment: cpu-small}}
          - {name: unmapped, type: execution, step: plain, override: {environment: nowhere}}
          - {name: none, type: execution, step: plain}
          - {name: deploy, type: deployment, deployment: d, endpoints: [predict]}
        edges:
          - [gpu.output.*, small.input.x]
    """
)
SIDECAR = textwrap.dedent(
    """
    environments:
      aws-eu-west-1-p3-2xlarge:
        queue: gpu
        pool: gpu-machines
        pool_slots: 2
        cpus: 4
        memory: 16g
        shm_size: 2g
        gpus: 1
        network: host
      cpu-small:
        queue: cpu
        cpus: 0.5
        gpus: all
    """
)


@pytest.fixture
def dag(tmp_path: Path):  # type: ignore[no-untyped-def]
    clear_cache()
    (tmp_path / "valohai.yaml").write_text(VALOHAI)
    (tmp_path / "valohai-airflow.yaml").write_text(SIDECAR)
    plan = compile_project(tmp_path / "valohai.yaml", project_name="m")
    return build_dag(plan, plan.pipelines[0])


def test_tasks_carry_the_queue_pool_and_slots_of_their_environment(dag) -> None:  # type: ignore[no-untyped-def]
    gpu = dag.get_task("gpu")
    assert (gpu.queue, gpu.pool, gpu.pool_slots) == ("gpu", "gpu-machines", 2)
    small = dag.get_task("small")
    assert (small.queue, small.pool, small.pool_slots) == ("cpu", "default_pool", 1)
    for name in ("unmapped", "none", "deploy", "sweep__variants"):
        task = dag.get_task(name)
        assert (task.queue, task.pool, task.pool_slots) == ("default", "default_pool", 1), name


def test_a_task_nodes_mapped_executions_carry_them_through_serialization(dag) -> None:  # type: ignore[no-untyped-def]
    from airflow.serialization.serialized_objects import DagSerialization

    assert dag.get_task("sweep").partial_kwargs["queue"] == "gpu"
    served = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    for name in ("gpu", "sweep"):
        task = served.get_task(name)
        assert (task.queue, task.pool, task.pool_slots) == ("gpu", "gpu-machines", 2), name
    assert served.get_task("none").queue == "default"


def test_container_limits_reach_the_docker_operator(dag) -> None:  # type: ignore[no-untyped-def]
    gpu = dag.get_task("gpu")
    assert isinstance(gpu, ValohaiExecutionOperator)
    assert (gpu.cpus, gpu.mem_limit, gpu.shm_size) == (4.0, 16 * GiB, 2 * GiB)
    (request,) = gpu.device_requests
    assert isinstance(request, DeviceRequest)
    assert (request.driver, request.count, request.capabilities) == ("nvidia", 1, [["gpu"]])
    small = dag.get_task("small")
    assert small.cpus == 0.5 and small.mem_limit is None and small.shm_size is None
    assert small.device_requests[0].count == -1  # gpus: all
    plain = dag.get_task("none")
    assert (plain.cpus, plain.mem_limit, plain.shm_size, plain.device_requests) == (1.0, None, None, None)


def test_the_cpu_quota_is_added_to_the_host_config() -> None:
    """DockerOperator's `cpus` is only cpu_shares (a weight): the quota is NanoCpus, as `docker run --cpus`."""
    client = APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # builds configs offline
    config = HostConfigClient(client, nano_cpus=500_000_000).create_host_config(
        cpu_shares=512, mem_limit=16 * GiB, shm_size=2 * GiB
    )
    assert (config["NanoCpus"], config["CpuShares"], config["Memory"], config["ShmSize"]) == (
        500_000_000,
        512,
        16 * GiB,
        2 * GiB,
    )
    assert HostConfigClient(client).api_version == "1.41"  # everything else is the client's


def test_the_network_of_the_environment_reaches_the_docker_operator(dag) -> None:  # type: ignore[no-untyped-def]
    assert dag.get_task("gpu").network_mode == "host"
    assert dag.get_task("none").network_mode is None  # DockerOperator leaves it to the engine: `default`


def test_task_docs_say_which_queue_pool_and_limits_the_node_waits_for(dag) -> None:  # type: ignore[no-untyped-def]
    gpu = dag.get_task("gpu").doc_md
    assert (
        "Environment `aws-eu-west-1-p3-2xlarge` (`environments:` of valohai-airflow.yaml): the task waits in "
        "queue `gpu` until a worker that serves it takes it (`airflow celery worker --queues gpu`; a "
        "LocalExecutor runs every queue) and for 2 free slots of pool `gpu-machines` (create it first: "
        "`airflow pools set gpu-machines <slots> <description>`)." in gpu
    )
    assert (
        "Container limits: 4 CPUs (`cpus` of environment 'aws-eu-west-1-p3-2xlarge' in valohai-airflow.yaml); "
        "16 GiB memory (`memory` of environment 'aws-eu-west-1-p3-2xlarge' in valohai-airflow.yaml); "
        "2 GiB `/dev/shm`; 1 GPU (an NVIDIA device request; the worker needs the NVIDIA Container Toolkit). "
        "Network: `host` (environment 'aws-eu-west-1-p3-2xlarge' in valohai-airflow.yaml); a "
        "`VH_DOCKER_NETWORK` variable of the step picks another." in gpu
    )
    assert (
        "Network: the Docker engine's default (`bridge` on a usual engine: online); a `VH_DOCKER_NETWORK` "
        "variable of the step picks another." in dag.get_task("none").doc_md
    )
    assert "the project's `network` in valohai-airflow.yaml, else the Docker engine's default" in (
        dag.get_task("deploy").doc_md
    )
    assert "queue `gpu`" in dag.get_task("sweep").partial_kwargs["doc_md"]
    unmapped = dag.get_task("unmapped").doc_md
    assert (
        "Environment `nowhere` has no mapping in `environments:` of valohai-airflow.yaml (a warning when the "
        "DAG is built), so it runs on Airflow's default queue `default`." in unmapped
    )
    assert "Container limits: none" in unmapped
    assert (
        "Runs on Airflow's default queue `default`: its step names no `environment`."
        in dag.get_task("none").doc_md
    )
    assert "Runs on Airflow's default queue `default`: valohai.yaml gives a deployment no `environment`" in (
        dag.get_task("deploy").doc_md
    )
