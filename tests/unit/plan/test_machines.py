"""Each node's machine: its effective `environment` (the step's or its override's) mapped by
`environments:` of valohai-airflow.yaml; the step's `resources` win; an unmapped environment is a
warning at the line that names it, and its nodes get Airflow's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.machines import container_network
from valohai_airflow.plan.model import MachinePlan, NodeKind
from valohai_airflow.spec.diagnostics import Severity

GiB = 1024**3
MiB = 1024**2

VALOHAI = """\
- step:
    name: train
    image: busybox
    command: date
    environment: aws-eu-west-1-p3-2xlarge
- step:
    name: small
    image: busybox
    command: date
    environment: cpu-small
    resources:
      cpu: {min: 1, max: 2}
      memory: {max: 100}
- step:
    name: plain
    image: busybox
    command: date
- endpoint:
    name: predict
    image: busybox
    server-command: httpd -f
- pipeline:
    name: p
    nodes:
      - {name: gpu, type: execution, step: train}
      - name: moved
        type: execution
        step: train
        override:
          environment: cpu-small
      - {name: typo, type: execution, step: plain, override: {environment: aws-eu-west-1-p3-2xlarg}}
      - {name: limited, type: execution, step: small}
      - {name: sweep, type: task, step: train}
      - {name: none, type: execution, step: plain}
      - {name: deploy, type: deployment, deployment: d, endpoints: [predict]}
    edges: []
- pipeline:
    name: q
    nodes:
      - {name: again, type: execution, step: plain, override: {environment: aws-eu-west-1-p3-2xlarg}}
    edges: []
"""

SIDECAR = """\
environments:
  aws-eu-west-1-p3-2xlarge:
    queue: gpu
    pool: gpu-machines
    pool_slots: 2
    cpus: 4
    memory: 16g
    shm_size: 2g
    gpus: 1
  cpu-small:
    queue: cpu
    cpus: 0.5
    memory: 1g
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def compiled(tmp_path: Path, sidecar: str | None = SIDECAR, valohai: str = VALOHAI):  # type: ignore[no-untyped-def]
    (tmp_path / "valohai.yaml").write_text(valohai)
    if sidecar is not None:
        (tmp_path / "valohai-airflow.yaml").write_text(sidecar)
    return compile_project(tmp_path / "valohai.yaml")


def test_a_mapped_step_environment_gives_queue_pool_and_resources(tmp_path: Path) -> None:
    machine = compiled(tmp_path).pipelines[0].node("gpu").machine
    assert (machine.environment, machine.mapped) == ("aws-eu-west-1-p3-2xlarge", True)
    assert (machine.queue, machine.pool, machine.pool_slots) == ("gpu", "gpu-machines", 2)
    assert (machine.cpus, machine.memory, machine.shm_size, machine.gpus) == (4.0, 16 * GiB, 2 * GiB, 1)
    assert machine.operator_arguments == {"queue": "gpu", "pool": "gpu-machines", "pool_slots": 2}
    assert machine.memory_from == "`memory` of environment 'aws-eu-west-1-p3-2xlarge' in valohai-airflow.yaml"


def test_a_task_node_gets_its_steps_machine(tmp_path: Path) -> None:
    node = compiled(tmp_path).pipelines[0].node("sweep")
    assert node.kind is NodeKind.TASK
    assert node.machine.queue == "gpu" and node.machine.gpus == 1


def test_an_override_environment_replaces_the_steps(tmp_path: Path) -> None:
    machine = compiled(tmp_path).pipelines[0].node("moved").machine
    assert (machine.environment, machine.queue, machine.cpus, machine.memory) == (
        "cpu-small",
        "cpu",
        0.5,
        GiB,
    )
    assert (machine.pool, machine.pool_slots, machine.shm_size, machine.gpus) == (None, None, None, None)
    assert machine.operator_arguments == {"queue": "cpu"}


def test_the_steps_resources_win_over_the_environments_limits(tmp_path: Path) -> None:
    machine = compiled(tmp_path).pipelines[0].node("limited").machine
    assert machine.queue == "cpu"  # placement still from the environment
    assert (machine.cpus, machine.memory) == (2.0, 100 * MiB)  # resources.cpu.max, resources.memory.max (MB)
    assert machine.cpus_from == "`resources.cpu` of step 'small'"
    assert machine.memory_from == "`resources.memory` of step 'small'"


def test_no_environment_and_deployment_nodes_keep_airflows_defaults(tmp_path: Path) -> None:
    pipeline = compiled(tmp_path).pipelines[0]
    assert pipeline.node("none").machine == MachinePlan()
    assert pipeline.node("deploy").machine == MachinePlan()
    assert MachinePlan().operator_arguments == {}


def test_an_unmapped_environment_warns_once_where_it_is_written(tmp_path: Path) -> None:
    plan = compiled(tmp_path)
    machine = plan.pipelines[0].node("typo").machine
    assert machine == MachinePlan(environment="aws-eu-west-1-p3-2xlarg")
    assert machine.operator_arguments == {}  # Airflow's default queue
    warnings = [d for d in plan.diagnostics if "has no mapping" in d.message]
    assert len(warnings) == 2  # one per place valohai.yaml names it: the two overrides
    first = warnings[0]
    assert first.severity is Severity.WARNING
    assert (Path(first.location.file).name, first.location.line, first.location.column) == (
        "valohai.yaml",
        31,
        76,
    )
    assert first.message == (
        "environment 'aws-eu-west-1-p3-2xlarg' has no mapping in `environments:` of valohai-airflow.yaml, "
        'so node "typo" of pipeline "p" run on Airflow\'s default queue, with no pool, CPU, memory or GPU '
        "settings from it"
    )
    assert first.hint == 'did you mean "aws-eu-west-1-p3-2xlarge"?'


def test_one_warning_for_a_step_environment_all_nodes_share(tmp_path: Path) -> None:
    plan = compiled(tmp_path, sidecar=None)  # no sidecar: nothing is mapped
    warnings = [d for d in plan.diagnostics if "has no mapping" in d.message]
    by_line = {d.location.line: d for d in warnings}
    step_warning = by_line[5]  # `environment:` of step train
    assert "'aws-eu-west-1-p3-2xlarge'" in step_warning.message
    assert 'nodes "gpu", "sweep" of pipeline "p"' in step_warning.message
    assert (
        step_warning.hint
        == "map it under `environments:` in valohai-airflow.yaml to give it a queue and resources"
    )
    assert sorted(by_line) == [5, 10, 30, 31, 40]  # train, small, moved's override, typo's and again's
    assert all(n.machine.operator_arguments == {} for n in plan.pipelines[0].nodes)


NETWORK_SIDECAR = """\
network: host
environments:
  aws-eu-west-1-p3-2xlarge: {queue: gpu, network: none}
  cpu-small: {queue: cpu}
"""


def test_the_network_comes_from_the_environment_else_the_project_else_the_engine(tmp_path: Path) -> None:
    pipeline = compiled(tmp_path, NETWORK_SIDECAR).pipelines[0]
    gpu, moved, plain = (pipeline.node(n).machine for n in ("gpu", "moved", "none"))
    assert (gpu.network, gpu.network_from) == (
        "none",
        "environment 'aws-eu-west-1-p3-2xlarge' in valohai-airflow.yaml",
    )
    assert (moved.network, moved.network_from) == ("host", "the project's `network` in valohai-airflow.yaml")
    assert plain.network == "host"  # no environment: the project's network still applies
    assert pipeline.node("typo").machine.network == "host"  # an unmapped environment too


def test_without_a_network_setting_nodes_get_the_engines_default(tmp_path: Path) -> None:
    machine = compiled(tmp_path).pipelines[0].node("gpu").machine
    assert (machine.network, machine.network_from) == (None, "the Docker engine's default")
    assert machine.step_network is True


def test_a_steps_vh_docker_network_wins_unless_the_sidecar_forbids_it(tmp_path: Path) -> None:
    allowed = compiled(tmp_path, NETWORK_SIDECAR).pipelines[0].node("gpu").machine
    assert container_network(allowed, {}) == ("none", allowed.network_from)
    assert container_network(allowed, {"VH_DOCKER_NETWORK": ""}) == ("none", allowed.network_from)
    assert container_network(allowed, {"VH_DOCKER_NETWORK": "host"}) == (
        "host",
        "the step's VH_DOCKER_NETWORK variable",
    )
    clear_cache()
    forbidden = compiled(tmp_path, NETWORK_SIDECAR + "allow_vh_docker_network: false\n").pipelines[0]
    machine = forbidden.node("gpu").machine
    assert machine.step_network is False
    assert container_network(machine, {}) == ("none", machine.network_from)
    with pytest.raises(ValohaiAirflowError) as caught:
        container_network(machine, {"VH_DOCKER_NETWORK": "host"})
    assert str(caught.value) == (
        "the step's VH_DOCKER_NETWORK='host' asks for Docker network 'host', but valohai-airflow.yaml forbids "
        "steps to pick their network (`allow_vh_docker_network: false`) (drop VH_DOCKER_NETWORK from the step, "
        "or set `network` of its environment in valohai-airflow.yaml)"
    )


def test_a_forbidden_vh_docker_network_is_a_warning_where_the_step_sets_it(tmp_path: Path) -> None:
    valohai = VALOHAI.replace(
        "    environment: cpu-small\n",
        "    environment: cpu-small\n    environment-variables:\n      - {name: VH_DOCKER_NETWORK, default: host}\n",
        1,
    )
    plan = compiled(tmp_path, SIDECAR + "allow_vh_docker_network: false\n", valohai)
    warnings = [str(d) for d in plan.diagnostics if "VH_DOCKER_NETWORK" in d.message]
    assert warnings == [
        f"{tmp_path / 'valohai.yaml'}:12:9: warning: step 'small' sets VH_DOCKER_NETWORK='host', but "
        "valohai-airflow.yaml forbids steps to pick their network (`allow_vh_docker_network: false`), so its "
        "nodes fail before their container starts (drop VH_DOCKER_NETWORK from the step, or set `network` of "
        "its environment in valohai-airflow.yaml)"
    ]
    clear_cache()
    allowed = compiled(tmp_path, SIDECAR, valohai)
    assert not [d for d in allowed.diagnostics if "VH_DOCKER_NETWORK" in d.message]
