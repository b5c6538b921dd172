"""The compose stack (docker-compose.yaml) and its Airflow image (Dockerfile, .dockerignore).

No registry is reachable where these run, so the stack is never started. Instead:
- the files are read as Compose reads them (YAML merge keys, `${VAR:-default}` interpolation, `$$`)
  and every property the README promises is checked, under the defaults and under overrides;
- where a Compose implementation is installed (`docker compose`, or Debian's `docker-compose`, which
  `scripts/compose.sh` installs for `make test`), its `config` command validates the file for real,
  with and without the celery profile, and the same properties are checked on what it prints;
- the two shell/python snippets the stack runs itself (the bucket job, the worker's executor
  guard) are run here: the bucket job against a real SeaweedFS on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.seaweed import S3Endpoint

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CONSTRAINTS = REPO_ROOT / "constraints.txt"

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
LONG_RUNNING = {
    "postgres",
    "redis",
    "s3",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
ONE_SHOT = {"s3-bucket", "airflow-init"}
SOCKET = "/var/run/docker.sock"

# (service, dependency) → condition: the start order of the stack.
START_ORDER = {
    ("airflow-init", "postgres"): "service_healthy",
    ("s3-bucket", "s3"): "service_healthy",
    ("airflow-apiserver", "airflow-init"): "service_completed_successfully",
    ("airflow-scheduler", "airflow-init"): "service_completed_successfully",
    ("airflow-scheduler", "s3-bucket"): "service_completed_successfully",
    ("airflow-scheduler", "airflow-apiserver"): "service_healthy",
    ("airflow-dag-processor", "airflow-init"): "service_completed_successfully",
    ("airflow-triggerer", "airflow-init"): "service_completed_successfully",
    ("airflow-worker", "redis"): "service_healthy",
    ("airflow-worker", "airflow-init"): "service_completed_successfully",
    ("airflow-worker", "s3-bucket"): "service_completed_successfully",
    ("airflow-worker", "airflow-apiserver"): "service_healthy",
}


# -- reading the file as Compose does -------------------------------------------------------------

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


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
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


# -- the compose file -----------------------------------------------------------------------------


def test_the_default_stack_and_the_celery_profile(raw: dict[str, Any]) -> None:
    svcs = services(raw)
    assert set(svcs) == DEFAULT_STACK | CELERY_ONLY
    always = {name for name, svc in svcs.items() if not svc.get("profiles")}
    assert always == DEFAULT_STACK, "the default stack (LocalExecutor) must need no profile"
    for name in CELERY_ONLY:
        assert svcs[name]["profiles"] == ["celery"], name


def test_airflow_services_are_built_from_the_dockerfile(raw: dict[str, Any]) -> None:
    svcs = services(raw)
    images = set()
    for name in AIRFLOW_SERVICES | {"s3-bucket"}:
        build = svcs[name].get("build")
        assert isinstance(build, dict), f"{name} has no build:"
        assert (REPO_ROOT / build["context"]).resolve() == REPO_ROOT
        assert (REPO_ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        images.add(svcs[name]["image"])
    assert len(images) == 1, f"one image for every Airflow service, not {images}"


def test_executor_is_local_by_default_and_celery_when_switched(raw: dict[str, Any]) -> None:
    executor = "AIRFLOW__CORE__EXECUTOR"
    by_default = {environment(services(raw)[name])[executor] for name in AIRFLOW_SERVICES}
    assert by_default == {"LocalExecutor"}
    switched = services(raw, {"AIRFLOW_EXECUTOR": "CeleryExecutor"})
    assert {environment(switched[name])[executor] for name in AIRFLOW_SERVICES} == {"CeleryExecutor"}
    # what the workers and the scheduler need under Celery: a broker that is the redis service, a
    # result backend in the same Postgres
    for name in AIRFLOW_SERVICES:
        env = environment(switched[name])
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert "@postgres/" in env["AIRFLOW__CELERY__RESULT_BACKEND"], name


@pytest.mark.parametrize("executor, exits", [("LocalExecutor", 1), ("CeleryExecutor", 0)])
def test_the_worker_refuses_to_start_without_the_celery_executor(
    raw: dict[str, Any], tmp_path: Path, executor: str, exits: int
) -> None:
    """The profile alone would give an idle worker while the scheduler ran every task itself."""
    worker = services(raw)["airflow-worker"]
    command = worker["command"]
    assert command[:2] == ["bash", "-c"], "the image's entrypoint runs `bash -c SCRIPT` after its DB check"
    fake = tmp_path / "airflow"  # stands in for the real CLI: records what the script would exec
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path / "ran"}\n')
    fake.chmod(0o755)
    done = subprocess.run(
        ["bash", "-c", command[2]],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "AIRFLOW__CORE__EXECUTOR": executor},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == exits, done.stderr
    if exits:
        assert "AIRFLOW_EXECUTOR=CeleryExecutor" in done.stderr
        assert not (tmp_path / "ran").exists()
    else:
        assert (tmp_path / "ran").read_text().split() == ["celery", "worker"]


def test_healthchecks_and_start_order(raw: dict[str, Any]) -> None:
    svcs = services(raw)
    for name in LONG_RUNNING:
        check = svcs[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert svcs[name].get("restart") in ("always", "unless-stopped"), name
    for name in ONE_SHOT:
        assert svcs[name].get("restart", "no") == "no", f"{name} is a one-shot job"

    found = {(name, dep): cond for name, svc in svcs.items() for dep, cond in conditions(svc).items()}
    assert found == START_ORDER
    for (name, dep), cond in found.items():
        if cond == "service_healthy":
            assert svcs[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no check"
        if cond == "service_completed_successfully":
            assert dep in ONE_SHOT, f"{name} waits for {dep} to finish; it never does"
        if not svcs[name].get("profiles"):
            assert not svcs[dep].get("profiles"), f"{name} runs without a profile but needs {dep}"

    # a start order exists (no cycle) and it is postgres → init → api-server → scheduler
    order: list[str] = []
    pending = dict.fromkeys(svcs)
    while pending:
        ready = [n for n in pending if all(d in order for d in conditions(svcs[n]))]
        assert ready, f"a dependency cycle among {sorted(pending)}"
        order.extend(sorted(ready))
        for n in ready:
            del pending[n]
    ranks = [order.index(n) for n in ("postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler")]
    assert ranks == sorted(ranks)


def test_the_docker_socket_is_mounted_where_tasks_run_and_only_there(raw: dict[str, Any]) -> None:
    svcs = services(raw)
    for name, svc in svcs.items():
        targets = [target for _, target in binds(svc)]
        if name in TASK_RUNNERS:
            assert SOCKET in targets, f"{name} runs tasks: it needs the Docker socket"
            source = dict((t, s) for s, t in binds(svc))[SOCKET]
            assert source == SOCKET  # the host's socket by default (DOCKER_SOCKET to change it)
        else:
            assert SOCKET not in targets, f"{name} runs no task: it must not hold the Docker socket"
    overridden = services(raw, {"DOCKER_SOCKET": "/run/user/1000/docker.sock"})
    for name in TASK_RUNNERS:
        assert ("/run/user/1000/docker.sock", SOCKET) in binds(overridden[name])


@pytest.mark.parametrize(
    "env",
    [{}, {"VALOHAI_WORK_DIR": "/srv/valohai/work", "VALOHAI_CACHE_DIR": "/srv/valohai/cache"}],
    ids=["defaults", "overridden"],
)
def test_work_dir_and_input_cache_are_mounted_at_the_same_path(
    raw: dict[str, Any], env: dict[str, str]
) -> None:
    """Node containers are siblings: the operator's bind sources are host paths."""
    svcs = services(raw, env)
    for name in TASK_RUNNERS:
        svc = svcs[name]
        mounts = binds(svc)
        settings = environment(svc)
        for option, var in (("WORK_DIR", "VALOHAI_WORK_DIR"), ("INPUT_CACHE_DIR", "VALOHAI_CACHE_DIR")):
            path = settings[f"AIRFLOW__VALOHAI__{option}"]
            assert path.startswith("/"), f"{name}: {option} must be an absolute host path, not {path!r}"
            if var in env:
                assert path == env[var]
            assert (path, path) in mounts, f"{name}: {path} is not mounted at the same path ({mounts})"
        # root, so the task can remove work dirs holding files the (root) node containers wrote
        assert str(svc.get("user")) == "0:0", name
    # the dags folder, where the DAG processor and every task runner parse the loader file
    for name in TASK_RUNNERS | {"airflow-dag-processor"}:
        assert (str(REPO_ROOT / "dags"), "/opt/airflow/dags") in binds(svcs[name]), name
    assert (REPO_ROOT / "dags" / "valohai_dags.py").is_file()


@pytest.mark.parametrize("env", [{}, {"VALOHAI_BUCKET": "team-runs"}], ids=["defaults", "overridden"])
def test_the_store_is_the_bucket_the_job_creates(raw: dict[str, Any], env: dict[str, str]) -> None:
    svcs = services(raw, env)
    job = environment(svcs["s3-bucket"])
    bucket = job["VALOHAI_BUCKET"]
    assert bucket == env.get("VALOHAI_BUCKET", bucket)
    assert "create_bucket" in script_of(svcs["s3-bucket"])
    s3_port = re.search(r"-s3\.port=(\d+)", script_of(svcs["s3"]))
    assert s3_port, "the S3 server's port is set explicitly"
    endpoint = f"http://s3:{s3_port.group(1)}"
    assert job["AIRFLOW__VALOHAI__S3_ENDPOINT_URL"] == endpoint
    server = environment(svcs["s3"])
    for name in AIRFLOW_SERVICES:
        settings = environment(svcs[name])
        assert settings["AIRFLOW__VALOHAI__STORE_URL"].startswith(f"s3://{bucket}/"), name
        assert settings["AIRFLOW__VALOHAI__S3_ENDPOINT_URL"] == endpoint, name
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert settings[key] == server[key] == job[key], f"{name}: {key} differs from the S3 server's"
    for name in TASK_RUNNERS:
        assert conditions(svcs[name])["s3-bucket"] == "service_completed_successfully"


def test_the_bucket_job_creates_the_bucket_once(raw: dict[str, Any], s3_endpoint: S3Endpoint) -> None:
    """The job's own script, run against a real S3 server: creates the bucket, then finds it."""
    import boto3

    job = services(raw)["s3-bucket"]
    assert job["entrypoint"] == ["python", "-c"]
    bucket = f"compose-{uuid.uuid4().hex[:10]}"
    env = {
        **environment(job),
        "VALOHAI_BUCKET": bucket,
        "AIRFLOW__VALOHAI__S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script_of(job)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip())
    assert outputs == [f"bucket {bucket} created", f"bucket {bucket} exists"]
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint.endpoint_url,
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_simple_auth_manager_password_file_is_shared_by_init_and_api_server(raw: dict[str, Any]) -> None:
    svcs = services(raw)
    path = environment(svcs["airflow-apiserver"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    init = script_of(svcs["airflow-init"])
    assert "airflow db migrate" in init
    assert path in init, "airflow-init writes the password file the API server reads"
    folder = str(Path(path).parent)
    volume = {t: s for s, t in binds(svcs["airflow-init"])}.get(folder)
    assert volume and volume in raw.get("volumes", {}), "a named volume holds the password file"
    assert (volume, folder) in binds(svcs["airflow-apiserver"])
    admin = services(raw, {"AIRFLOW_ADMIN_USER": "ops", "AIRFLOW_ADMIN_PASSWORD": "s3cr3t-pw"})
    init_env = environment(admin["airflow-init"])
    assert (init_env["ADMIN_USER"], init_env["ADMIN_PASSWORD"]) == ("ops", "s3cr3t-pw")
    assert environment(admin["airflow-apiserver"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "ops:admin"


def test_every_published_port_is_on_loopback(raw: dict[str, Any]) -> None:
    published = 0
    for env in ({}, {"AIRFLOW_PORT": "18080", "S3_PORT": "18333"}):
        for name, svc in services(raw, env).items():
            for host in port_hosts(svc):
                assert host == "127.0.0.1", f"{name} publishes a port on {host or 'every interface'}"
                published += 1
    assert published >= 4  # the API server and the S3 server, under both settings


SECRET_KEYS = re.compile(r"PASSWORD|SECRET|FERNET|SQL_ALCHEMY_CONN|RESULT_BACKEND")


def test_secrets_are_compose_variables(raw: dict[str, Any]) -> None:
    """Every password, key and secret comes from a variable (with a default), so .env can set it."""
    seen = 0
    for name, svc in raw["services"].items():
        for key, value in environment(svc).items():
            if SECRET_KEYS.search(key) and not key.endswith("_FILE"):
                assert variables(value), f"{name}: {key} is hard-coded ({value!r})"
                marker = f"from-env-{seen}"
                resolved = environment(resolve(svc, dict.fromkeys(variables(value), marker)))[key]
                assert marker in resolved, f"{name}: {key} does not follow its variable"
                seen += 1
    assert seen >= 10


# -- the Dockerfile and .dockerignore -------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def constraint_pin(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", CONSTRAINTS.read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in constraints.txt"
    return match.group(1)


def test_the_image_is_official_airflow_at_the_pinned_version() -> None:
    instructions = dockerfile_instructions()
    args = {}
    for op, rest in instructions:
        if op == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
        if op == "FROM":
            base = interpolate(rest, args)
            break
    python = re.search(r"--python-version (\S+)", CONSTRAINTS.read_text())
    assert python, "constraints.txt says which Python it was compiled for"
    assert base == f"apache/airflow:{constraint_pin('apache-airflow')}-python{python.group(1)}"
    assert python.group(1) == "3.11"
    users = [rest for op, rest in instructions if op == "USER"]
    assert users and users[-1] == "airflow", "the image ends as its own non-root user"


def test_the_image_installs_this_package_with_its_constraints() -> None:
    instructions = dockerfile_instructions()
    copied: dict[str, str] = {}  # source → where it lands
    for op, rest in instructions:
        if op in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            *sources, dest = parts
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file"
                copied[source] = dest.rstrip("/") + "/" + Path(source).name if dest.endswith("/") else dest
    for needed in ("pyproject.toml", "README.md", "constraints.txt", "valohai_airflow"):
        assert needed in copied, f"the Dockerfile does not copy {needed}"
    project = str(Path(copied["pyproject.toml"]).parent)
    assert copied["valohai_airflow"] == f"{project}/valohai_airflow"
    assert copied["README.md"] == f"{project}/README.md"  # pyproject's readme, needed to build

    installs = [shlex.split(rest) for op, rest in instructions if op == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    words = installs[0][installs[0].index("install") :]
    constraint = next(
        (words[i + 1] for i, w in enumerate(words) if w in ("-c", "--constraint")),
        next((w.split("=", 1)[1] for w in words if w.startswith("--constraint=")), None),
    )
    assert constraint == copied["constraints.txt"], "pip install must use the copied constraints.txt"
    assert project in words, "pip install must install the copied project"
    assert "apache-airflow==${AIRFLOW_VERSION}" in words, "Airflow stays at the base image's version"


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per line of .dockerignore, in order (Docker's rules: the last match wins)."""
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((negated, re.compile(regex + "$")))
    return patterns


def ignored(path: str) -> bool:
    """Whether the build context leaves `path` out: a pattern matching it or one of its parents."""
    result = False
    parts = path.split("/")
    for negated, regex in dockerignore_patterns():
        if any(regex.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negated
    return result


def test_dockerignore_keeps_the_virtualenv_git_and_caches_out_of_the_context() -> None:
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "valohai_airflow/__pycache__/cli.cpython-311.pyc",
        "tests/unit/__pycache__/x.pyc",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/README.md",
        ".hypothesis/examples/x",
        "valohai_airflow.egg-info/PKG-INFO",
        ".demo/airflow/airflow.db",
    ):
        assert ignored(path), f"{path} would be sent to the engine"
    for path in ("pyproject.toml", "README.md", "constraints.txt", "valohai_airflow/cli.py", "Dockerfile"):
        assert not ignored(path), f"{path} is needed by the build but .dockerignore drops it"
    assert not ignored("valohai_airflow/schemas/valohai-airflow.schema.json")  # package data


# -- a real Compose implementation ----------------------------------------------------------------


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


COMPOSE = compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE is None,
    reason="no `docker compose` or `docker-compose` (Debian: apt-get install docker-compose; "
    "`make test` does it when run as root on Debian)",
)


def compose_config(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`config` of the compose file in a clean environment (no .env of the developer's, no COMPOSE_*)."""
    assert COMPOSE is not None
    env_file = tmp_path / f"{uuid.uuid4().hex}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (env or {}).items()))
    done = subprocess.run(
        [*COMPOSE, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args, "config"],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{' '.join(COMPOSE)} config failed:\n{done.stderr}"
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


@needs_compose
def test_compose_config_accepts_the_default_stack(tmp_path: Path) -> None:
    svcs = active(compose_config(tmp_path), set())
    assert set(svcs) == DEFAULT_STACK
    check_resolved_stack(svcs, "LocalExecutor")
    assert environment(svcs["airflow-scheduler"])["AIRFLOW__VALOHAI__STORE_URL"] == "s3://valohai/store"


@needs_compose
def test_compose_config_accepts_the_celery_profile(tmp_path: Path) -> None:
    config = compose_config(tmp_path, "--profile", "celery", env={"AIRFLOW_EXECUTOR": "CeleryExecutor"})
    svcs = active(config, {"celery"})
    assert set(svcs) == DEFAULT_STACK | CELERY_ONLY
    check_resolved_stack(svcs, "CeleryExecutor")


@needs_compose
def test_compose_config_reads_the_switch_and_secrets_from_the_env_file(tmp_path: Path) -> None:
    """The README's way: the executor, paths and secrets in .env (here: the file given as --env-file)."""
    env = {
        "COMPOSE_PROFILES": "celery",
        "AIRFLOW_EXECUTOR": "CeleryExecutor",
        "VALOHAI_WORK_DIR": "/srv/valohai/work",
        "POSTGRES_PASSWORD": "pg-from-env",
        "AIRFLOW_JWT_SECRET": "jwt-from-env",
    }
    svcs = active(compose_config(tmp_path, "--profile", "celery", env=env), {"celery"})
    check_resolved_stack(svcs, "CeleryExecutor")
    worker = environment(svcs["airflow-worker"])
    assert worker["AIRFLOW__VALOHAI__WORK_DIR"] == "/srv/valohai/work"
    assert json.loads(worker["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]) == {
        "imports": ["valohai_airflow.airflow.worker"]
    }
    assert worker["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-env"
    assert ":pg-from-env@postgres/" in worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert environment(svcs["postgres"])["POSTGRES_PASSWORD"] == "pg-from-env"
