"""`environments:` of valohai-airflow.yaml on a real Docker engine, through `dag.test()`: the limits of
a node's environment are the container's own, read from inside it (cgroup v1 or v2 files, `df` of
/dev/shm) and from the engine (`HostConfig` of the container, inspected just before our operator
removes it), for an execution node and a task node's mapped executions alike.

GPUs cannot be given here (no GPU, no NVIDIA runtime): the engine accepts creating the container with
the device request, so its HostConfig.DeviceRequests is checked, and refuses to start it ("could not
select device driver"), which the node reports as a failure that says what to do.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipelines import one_node, run_pipeline, step

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PREFIX = "env"
MiB = 1024**2

# Prints one metadata line: the CPU quota/period, the memory limit, and /dev/shm's size in KiB.
PROBE = (
    "if [ -f /sys/fs/cgroup/cpu.max ]; then cpu=$(cat /sys/fs/cgroup/cpu.max); "
    "mem=$(cat /sys/fs/cgroup/memory.max); "
    'else cpu="$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"; '
    "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); fi; "
    "shm=$(df -k /dev/shm | tail -n 1 | awk '{print $2}'); "
    'echo "{\\"cpu\\": \\"$cpu\\", \\"memory\\": \\"$mem\\", \\"shm_kb\\": \\"$shm\\"}"'
)

SIDECAR = """\
environments:
  small-box:
    queue: default        # dag.test() runs every queue in-process; the queue itself is checked in unit tests
    cpus: 0.5
    memory: 64m
    shm_size: 32m
  gpu-box:
    gpus: 1
"""


def _cpu_quota(text: str) -> float:
    quota, period = text.split()
    return int(quota) / int(period)


def test_the_container_gets_the_cpus_memory_and_shm_of_its_environment(
    dags_folder: Path, host_configs: list[dict[str, Any]]
) -> None:
    yaml = step(
        "probe", PROBE, "environment: small-box\nparameters:\n  - {name: n, type: integer, default: 0}"
    )
    yaml += textwrap.dedent(
        """\
        - task:
            name: twice
            step: probe
            parameters:
              - {name: n, style: multiple, rules: {items: [1, 2]}}
        - pipeline:
            name: p
            nodes:
              - {name: one, type: execution, step: probe}
              - {name: many, type: task, task: twice}
            edges: []
        """
    )
    outcome = run_pipeline(dags_folder, f"{PREFIX}-limits", yaml, sidecar=SIDECAR)
    assert outcome.state == "success", outcome.states
    manifests = [outcome.xcom("one")] + [
        t.xcom_pull(task_ids="many", map_indexes=t.map_index) for t in outcome.executions("many")
    ]
    assert len(manifests) == 3
    for manifest in manifests:
        seen = manifest["metadata"]  # read inside the container
        assert _cpu_quota(seen["cpu"]) == 0.5, seen
        assert int(seen["memory"]) == 64 * MiB, seen
        assert int(seen["shm_kb"]) == 32 * 1024, seen
    assert len(host_configs) == 3
    for config in host_configs:  # and as the engine holds it
        assert config["NanoCpus"] == 500_000_000
        assert config["CpuShares"] == 512  # DockerOperator's `cpus`: the relative weight, kept
        assert config["Memory"] == 64 * MiB
        assert config["ShmSize"] == 32 * MiB
        assert not config.get("DeviceRequests")


def test_a_gpu_request_reaches_the_engine_and_a_gpu_less_engine_refuses_it_clearly(
    dags_folder: Path, host_configs: list[dict[str, Any]]
) -> None:
    valohai = one_node(step("s", "echo never", extra="environment: gpu-box"))
    outcome = run_pipeline(dags_folder, f"{PREFIX}-gpu", valohai, files={"valohai-airflow.yaml": SIDECAR})
    assert outcome.states == {"only": "failed"}
    (config,) = host_configs  # created, never started
    assert config["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    (message,) = outcome.errors("only")
    assert "'only'" in message and "'gpu-box'" in message and "1 GPU(s)" in message, message
    assert "NVIDIA Container Toolkit" in message and "could not select device driver" in message, message
    assert outcome.xcom("only") is None
