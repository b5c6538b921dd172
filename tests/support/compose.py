"""docker-compose.yaml read as Compose reads it (YAML merge keys, `${VAR:-default}` interpolation,
`$$`), the services the stack has, and the Compose implementation installed here, if any: shared by
tests/unit/test_compose.py (the files alone) and tests/integration/test_compose.py (a real Compose,
a real S3 server)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DEFAULT_STACK = {
    "postgres",
    "s3",
    "s3-bucket",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
CELERY_ONLY = {"redis", "airflow-worker"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
TASK_RUNNERS = {"airflow-scheduler", "airflow-worker"}  # LocalExecutor: the scheduler; Celery: the worker
SOCKET = "/var/run/docker.sock"


_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`."""

    def one(match: re.Match[str]) -> str:
        dollar, name, op, arg, bare = match.groups()
        if dollar:
            return "$"
        if bare:
            return env.get(bare, "")
        value = env.get(name)
        if op == ":-":
            return value if value else interpolate(arg, env)
        if op == "-":
            return value if value is not None else interpolate(arg, env)
        if op in (":?", "?") and not value:
            raise ValueError(f"{name} is required: {arg}")
        return value or ""

    return _VAR.sub(one, text)


def variables(text: str) -> set[str]:
    """The variable names a raw value refers to (`$$` is a literal dollar, not a variable)."""
    names = set()
    for match in _VAR.finditer(text):
        if not match.group(1):
            names.add(match.group(2) or match.group(5))
            if match.group(4):
                names |= variables(match.group(4))
    return names


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # the safe loader applies `<<` merge keys
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def services(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return resolve(raw["services"], env or {})  # type: ignore[no-any-return]


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def binds(service: Mapping[str, Any], project_dir: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(source, target) of each volume, in short or long syntax; relative sources made absolute."""
    result = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = str(volume.get("source", "")), str(volume["target"])
        else:
            parts = str(volume).split(":")
            if len(parts) == 1:
                source, target = "", parts[0]
            else:
                source, target = parts[0], parts[1]
        if source.startswith("."):
            source = str((project_dir / source).resolve())
        result.append((source, target))
    return result


def port_hosts(service: Mapping[str, Any]) -> list[str]:
    """The host address of each published port, in short ("ip:host:container") or long syntax."""
    hosts = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            hosts.append(str(port.get("host_ip", "")))
        else:
            parts = str(port).split(":")
            hosts.append(parts[0] if len(parts) == 3 else "")
    return hosts


def conditions(service: Mapping[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: str((spec or {}).get("condition", "service_started")) for name, spec in depends.items()}


def script_of(service: Mapping[str, Any]) -> str:
    command = service.get("command")
    return command if isinstance(command, str) else "\n".join(str(part) for part in command or [])


# -- a real Compose implementation ----------------------------------------------------------------


@functools.cache
def compose_command() -> list[str] | None:
    """`docker compose` or `docker-compose`, whichever answers; asked on first need, not on import."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


NO_COMPOSE = (
    "no `docker compose` or `docker-compose` (Debian: apt-get install docker-compose; "
    "`make test` does it when run as root on Debian)"
)


def compose_config(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`config` of the compose file in a clean environment (no .env of the developer's, no COMPOSE_*)."""
    compose = compose_command()
    assert compose is not None
    env_file = tmp_path / f"{uuid.uuid4().hex}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (env or {}).items()))
    done = subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args, "config"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{' '.join(compose)} config failed:\n{done.stderr}"
    config = yaml.safe_load(done.stdout)
    assert isinstance(config, dict)
    return config


def active(config: Mapping[str, Any], profiles: set[str]) -> dict[str, Any]:
    """The services `up` would start: Compose v2 prints only those, docker-compose 1.29 prints all."""
    return {
        name: svc
        for name, svc in config["services"].items()
        if not svc.get("profiles") or set(svc["profiles"]) & profiles
    }


def check_resolved_stack(svcs: Mapping[str, Any], executor: str) -> None:
    for name in AIRFLOW_SERVICES & set(svcs):
        assert environment(svcs[name])["AIRFLOW__CORE__EXECUTOR"] == executor, name
    for name, svc in svcs.items():
        assert all(host == "127.0.0.1" for host in port_hosts(svc)), f"{name}: {svc.get('ports')}"
    for name in TASK_RUNNERS & set(svcs):
        mounts = binds(svcs[name])
        assert (SOCKET, SOCKET) in mounts, name
        work = environment(svcs[name])["AIRFLOW__VALOHAI__WORK_DIR"]
        assert (work, work) in mounts, name
