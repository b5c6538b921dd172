"""`environments:` of valohai-airflow.yaml: a Valohai machine type → Airflow queue, pool and container
resources; unknown keys and bad values are errors at their file:line:column."""

from __future__ import annotations

import json

import jsonschema
import pytest

from valohai_airflow.spec.diagnostics import Severity
from valohai_airflow.spec.sidecar import (
    EnvironmentSettings,
    parse_sidecar_text,
    parse_size,
    sidecar_json_schema,
)

GiB = 1024**3
MiB = 1024**2

FULL = """\
environments:
  aws-eu-west-1-p3-2xlarge:   # the slug a step's `environment:` names
    queue: gpu
    pool: gpu-machines
    pool_slots: 1
    cpus: 4
    memory: 16g
    shm_size: 2g
    gpus: 1
  cpu-small:
    cpus: 0.5
    memory: 536870912
    gpus: all
  only-a-queue:
    queue: cpu
"""


def errors(text: str) -> list[str]:
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is None
    return [str(d) for d in result.diagnostics.items if d.severity is Severity.ERROR]


def test_the_documented_schema_parses_into_bytes_and_counts() -> None:
    result = parse_sidecar_text(FULL, "valohai-airflow.yaml")
    assert result.settings is not None, [str(d) for d in result.diagnostics.items]
    environments = result.settings.environments
    assert (
        environments["aws-eu-west-1-p3-2xlarge"].model_dump()
        == EnvironmentSettings(
            queue="gpu", pool="gpu-machines", pool_slots=1, cpus=4, memory=16 * GiB, shm_size=2 * GiB, gpus=1
        ).model_dump()
    )
    assert (
        environments["cpu-small"].model_dump()
        == EnvironmentSettings(cpus=0.5, memory=512 * MiB, gpus="all").model_dump()
    )
    assert environments["only-a-queue"].model_dump() == EnvironmentSettings(queue="cpu").model_dump()
    assert environments["aws-eu-west-1-p3-2xlarge"].location.line == 3  # the mapping's first key


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16g", 16 * GiB),
        ("16G", 16 * GiB),
        ("16gb", 16 * GiB),
        ("512m", 512 * MiB),
        ("1.5g", int(1.5 * GiB)),
        ("2048k", 2 * MiB),
        ("100b", 100),
        ("100", 100),
        (4096, 4096),
    ],
)
def test_sizes_read_like_dockers(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_unknown_keys_are_errors_with_lines_and_did_you_mean() -> None:
    text = """\
environments:
  gpu-box:
    queu: gpu
    gpu: 1
    memory_limit: 4g
environment:
  x: {queue: y}
"""
    assert errors(text) == [
        "valohai-airflow.yaml:3:5: error: environment settings: unknown key 'queu' (did you mean 'queue'?) "
        "(valid keys: queue, pool, pool_slots, cpus, memory, shm_size, gpus, network)",
        "valohai-airflow.yaml:4:5: error: environment settings: unknown key 'gpu' (did you mean 'gpus'?) "
        "(valid keys: queue, pool, pool_slots, cpus, memory, shm_size, gpus, network)",
        "valohai-airflow.yaml:5:5: error: environment settings: unknown key 'memory_limit' (did you mean 'memory'?) "
        "(valid keys: queue, pool, pool_slots, cpus, memory, shm_size, gpus, network)",
        "valohai-airflow.yaml:6:1: error: valohai-airflow.yaml: unknown key 'environment' "
        "(did you mean 'environments'?) "
        "(valid keys: pipelines, triggers, on_error_retry, approval, deployments, environments, network, "
        "allow_vh_docker_network, mounts, variables, variable_groups, steps, step_dags, task_dags)",
    ]


def test_bad_values_are_errors_at_the_value_naming_the_environment() -> None:
    text = """\
environments:
  bad:
    queue: ""
    pool: two words
    pool_slots: 0
    cpus: 0
    memory: 1k
    shm_size: lots
    gpus: 0
  worse:
    cpus: four
    memory: 16 GiB
    gpus: some
    pool_slots: 1.5
    queue: 7
  not-a-mapping: [gpu]
"""
    label = "valohai-airflow.yaml:{}: error: environment settings {!r}: {}"
    assert errors(text) == [
        label.format("3:12", "bad", "'queue' must be a name without spaces, got ''"),
        label.format("4:11", "bad", "'pool' must be a name without spaces, got 'two words'"),
        label.format("5:17", "bad", "'pool_slots' must be at least 1, got 0"),
        label.format("6:11", "bad", "'cpus' must be more than 0, got 0"),
        label.format("7:13", "bad", "'memory': '1k' is below Docker's smallest memory limit, 6m"),
        label.format(
            "8:15",
            "bad",
            "'shm_size': 'lots' is not a size; write a number with b, k, m or g (powers of 1024), like '16g' or '512m'",
        ),
        label.format("9:11", "bad", "'gpus': must be a whole number of GPUs (1 to 64) or 'all', got 0"),
        label.format("11:11", "worse", "'cpus' must be a number, got 'four'"),
        label.format(
            "12:13",
            "worse",
            "'memory': '16 GiB' is not a size; write a number with b, k, m or g (powers of 1024), like '16g' or '512m'",
        ),
        label.format(
            "13:11", "worse", "'gpus': must be a whole number of GPUs (1 to 64) or 'all', got 'some'"
        ),
        label.format("14:17", "worse", "'pool_slots' must be an integer, got 1.5"),
        label.format("15:12", "worse", "'queue' must be a string, got 7"),
        label.format(
            "16:18",
            "not-a-mapping",
            "'not-a-mapping' must be a mapping with keys queue, pool, pool_slots, cpus, memory, shm_size, gpus, "
            "network",
        ),
    ]


def test_schema_accepts_the_documented_example_and_refuses_bad_values() -> None:
    import yaml

    validator = jsonschema.Draft202012Validator(sidecar_json_schema())
    assert list(validator.iter_errors(yaml.safe_load(FULL))) == []
    for bad in (
        {"environments": {"e": {"queu": "gpu"}}},
        {"environments": {"e": {"cpus": 0}}},
        {"environments": {"e": {"memory": "16 GiB"}}},
        {"environments": {"e": {"shm_size": 0}}},
        {"environments": {"e": {"gpus": 0}}},
        {"environments": {"e": {"gpus": "some"}}},
        {"environments": {"e": {"pool_slots": 0}}},
        {"environments": {"e": {"queue": "two words"}}},
    ):
        assert list(validator.iter_errors(bad)), bad
    assert "environment_location" not in json.dumps(sidecar_json_schema())


def test_network_project_wide_and_per_environment() -> None:
    text = """\
network: host
allow_vh_docker_network: false
environments:
  offline: {network: none}
  team: {network: team-net.1}
  plain: {queue: cpu}
"""
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is not None, [str(d) for d in result.diagnostics.items]
    settings = result.settings
    assert (settings.network, settings.allow_vh_docker_network) == ("host", False)
    environments = settings.environments
    assert (environments["offline"].network, environments["team"].network) == ("none", "team-net.1")
    assert environments["plain"].network is None  # the project's network applies (plan/machines.py)
    defaults = parse_sidecar_text("environments: {}\n", "valohai-airflow.yaml").settings
    assert defaults is not None
    assert (defaults.network, defaults.allow_vh_docker_network) == (None, True)  # the engine's default


def test_a_bad_network_is_an_error_at_its_value() -> None:
    text = """\
network: my net
allow_vh_docker_network: sometimes
environments:
  gpu:
    network: -bad
  cpu:
    network: 7
"""
    hint = (
        "is not a Docker network; write none, bridge, host, default (the engine's) or the name of a network "
        "the host's operator created (`docker network ls`)"
    )
    found = errors(text)
    assert found[0] == f"valohai-airflow.yaml:1:10: error: valohai-airflow.yaml: 'network': 'my net' {hint}"
    assert found[1].startswith(
        "valohai-airflow.yaml:2:26: error: valohai-airflow.yaml: 'allow_vh_docker_network'"
    )
    assert (
        found[2] == f"valohai-airflow.yaml:5:14: error: environment settings 'gpu': 'network': '-bad' {hint}"
    )
    assert found[3].startswith("valohai-airflow.yaml:7:14: error: environment settings 'cpu': 'network'")
    assert len(found) == 4


def test_the_schema_knows_the_network_keys() -> None:
    schema = sidecar_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors({"network": "host", "environments": {"x": {"network": "none"}}}))
    assert list(validator.iter_errors({"network": "my net"}))
    assert list(validator.iter_errors({"allow_vh_docker_network": "yes please"}))
