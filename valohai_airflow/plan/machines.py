"""Each node's machine: its effective Valohai `environment` resolved against `environments:` of
valohai-airflow.yaml, merged with the step's own `resources`.

Valohai runs a step on the machine type its `environment` names (a node's `override` may name
another). Here that slug names an Airflow queue (the workers that serve it), a pool and the
container's limits. A slug the sidecar does not map is a warning, once per place it is written,
and its nodes run on Airflow's default queue without limits from it. The step's `resources`
(written for Valohai's Kubernetes environments) are per step, so they win over the machine's.

The container's Docker network: the environment's `network`, else the project's, else the engine's
default (a normal engine's `bridge`: online, as Valohai executions are). A step's `VH_DOCKER_NETWORK`
variable wins over both, as on Valohai's private workers, unless `allow_vh_docker_network: false`.
The machine also carries the step's `mounts` that `mounts.allow` admits (mounts.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import MachinePlan, NodeKind, PipelinePlan
from valohai_airflow.plan.mounts import mounts_for
from valohai_airflow.spec.diagnostics import Diagnostics, Location
from valohai_airflow.spec.hints import did_you_mean
from valohai_airflow.spec.sidecar import SIDECAR_NAME, EnvironmentSettings, ProjectSettings
from valohai_airflow.spec.step import ResourceRange, Step

MB = 1024**2
STEP_NETWORK_VARIABLE = "VH_DOCKER_NETWORK"


def machine_for(step: Step, settings: ProjectSettings) -> MachinePlan:
    """The machine of a node whose effective step is `step`."""
    environment = step.environment
    mapping = settings.environments.get(environment) if environment else None
    env = mapping or EnvironmentSettings()
    label = f"of environment {environment!r} in {SIDECAR_NAME}"
    cpus, cpus_from = (float(env.cpus), f"`cpus` {label}") if env.cpus is not None else (None, "")
    memory, memory_from = (env.memory, f"`memory` {label}") if env.memory is not None else (None, "")
    if env.network is not None:
        network, network_from = env.network, f"environment {environment!r} in {SIDECAR_NAME}"
    elif settings.network is not None:
        network, network_from = settings.network, f"the project's `network` in {SIDECAR_NAME}"
    else:
        network, network_from = None, "the Docker engine's default"
    resources = step.resources
    if resources is not None:
        step_cpus = _limit(resources.cpu)
        if step_cpus is not None and step_cpus > 0:
            cpus, cpus_from = step_cpus, f"`resources.cpu` of step {step.name!r}"
        step_memory = _limit(resources.memory)
        if step_memory is not None and step_memory > 0:
            memory, memory_from = int(step_memory * MB), f"`resources.memory` of step {step.name!r}"
    return MachinePlan(
        environment=environment,
        mapped=mapping is not None,
        queue=env.queue,
        pool=env.pool,
        pool_slots=env.pool_slots,
        cpus=cpus,
        memory=memory,
        shm_size=env.shm_size,
        gpus=env.gpus,
        cpus_from=cpus_from,
        memory_from=memory_from,
        network=network,
        network_from=network_from,
        step_network=settings.allow_vh_docker_network,
        mounts=mounts_for(step, settings),
    )


def container_network(machine: MachinePlan, environment: Mapping[str, str]) -> tuple[str | None, str]:
    """The network a node's container gets and who asked for it: the step's `VH_DOCKER_NETWORK` (its
    value at run time: its default or an edge's) when the sidecar allows it, else the machine's."""
    asked = environment.get(STEP_NETWORK_VARIABLE)
    if not asked:
        return machine.network, machine.network_from
    if not machine.step_network:
        raise ValohaiAirflowError(
            f"the step's {STEP_NETWORK_VARIABLE}={asked!r} asks for Docker network {asked!r}, but "
            f"{SIDECAR_NAME} forbids steps to pick their network (`allow_vh_docker_network: false`)",
            hint=f"drop {STEP_NETWORK_VARIABLE} from the step, or set `network` of its environment in {SIDECAR_NAME}",
        )
    return asked, f"the step's {STEP_NETWORK_VARIABLE} variable"


def resolve_machines(
    pipelines: Sequence[PipelinePlan], settings: ProjectSettings, diagnostics: Diagnostics
) -> tuple[PipelinePlan, ...]:
    """The pipelines with every execution and task node's machine set; a warning for each place in
    valohai.yaml that names an environment valohai-airflow.yaml does not map."""
    unmapped: dict[tuple[str, Location], dict[str, list[str]]] = {}  # → pipeline → node names
    resolved = []
    machines: dict[int, MachinePlan] = {}
    for pipeline in pipelines:
        nodes = []
        for node in pipeline.nodes:
            if node.kind is NodeKind.DEPLOYMENT or node.step is None:
                nodes.append(node)
                continue
            # nodes share their step's object unless overridden: one MachinePlan per step, shared
            # in the plan and its pickle
            if id(node.step) not in machines:
                machines[id(node.step)] = machine_for(node.step, settings)
                _check_step_network(node.step, settings, diagnostics)
            machine = machines[id(node.step)]
            if machine.environment is not None and not machine.mapped:
                where = node.step.environment_location or node.location
                users = unmapped.setdefault((machine.environment, where), {})
                users.setdefault(pipeline.title, []).append(node.name)
            nodes.append(dataclasses.replace(node, machine=machine))
        resolved.append(dataclasses.replace(pipeline, nodes=tuple(nodes)))
    for (environment, where), users in unmapped.items():
        who = "; ".join(
            ("node " if len(names) == 1 else "nodes ") + ", ".join(f'"{n}"' for n in names) + f" of {title}"
            for title, names in users.items()
        )
        hint = did_you_mean(environment, settings.environments)
        diagnostics.warning(
            f"environment {environment!r} has no mapping in `environments:` of {SIDECAR_NAME}, so {who} "
            "run on Airflow's default queue, with no pool, CPU, memory or GPU settings from it",
            where,
            hint
            if hint and hint.startswith("did you mean")
            else f"map it under `environments:` in {SIDECAR_NAME} to give it a queue and resources",
        )
    return tuple(resolved)


def _check_step_network(step: Step, settings: ProjectSettings, diagnostics: Diagnostics) -> None:
    """A step that sets VH_DOCKER_NETWORK where the sidecar forbids it: its nodes will fail; say so now."""
    if settings.allow_vh_docker_network:
        return
    for variable in step.environment_variables:
        if variable.name == STEP_NETWORK_VARIABLE and variable.default:
            diagnostics.warning(
                f"step {step.name!r} sets {STEP_NETWORK_VARIABLE}={variable.default!r}, but {SIDECAR_NAME} "
                "forbids steps to pick their network (`allow_vh_docker_network: false`), so its nodes fail "
                "before their container starts",
                variable.location,
                f"drop {STEP_NETWORK_VARIABLE} from the step, or set `network` of its environment in {SIDECAR_NAME}",
            )


def _limit(value: ResourceRange | None) -> float | None:
    """`resources.cpu` / `resources.memory`: the max when given (a hard limit), else the min."""
    if value is None:
        return None
    chosen = value.max if value.max is not None else value.min
    return float(chosen) if chosen is not None else None
