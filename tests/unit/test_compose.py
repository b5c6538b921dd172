"""The compose stack (docker-compose.yaml) and its Airflow image (Dockerfile, .dockerignore), from the
files alone.

No registry is reachable where these run, so the stack is never started. The files are read as
Compose reads them (tests/support/compose.py) and every property docs/operating.md promises is checked,
under the defaults and under overrides; the worker's executor guard, a snippet the stack runs
itself, is run here. tests/integration/test_compose.py runs a real Compose's `config` and the bucket
job against a real S3 server.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.support.compose import (
    AIRFLOW_SERVICES,
    CELERY_ONLY,
    DEFAULT_STACK,
    SOCKET,
    TASK_RUNNERS,
    binds,
    conditions,
    environment,
    interpolate,
    load,
    port_hosts,
    resolve,
    script_of,
    services,
    variables,
)

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
CONSTRAINTS = REPO_ROOT / "constraints.txt"

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


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return load()


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
