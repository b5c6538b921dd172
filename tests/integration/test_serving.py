"""Deployment nodes that serve their endpoints (`deployments: {<name>: {serve: true}}`), run for real:
dag.test(), the Docker engine, containers on the engine's default network (or the project's `network`)
and Docker's own HEALTHCHECK.

What a server answers is asked inside its container (`docker exec … python3` against its own
127.0.0.1), the only way in on an engine without a bridge network (this one); which containers exist is asked of the engine
(`docker ps` by label). Every serving container a test starts is removed when the test ends, also
when it fails: they outlive their tasks on purpose, being the deployment.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, PYTHON, add_project, dag_bag, pipeline_dag

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

LABEL = "valohai-airflow"
PREFIX = "srv-"  # every project here is named srv-…
SERVING_DIR = AIRFLOW_HOME / "valohai" / "work" / "deployments"


def serving_containers(project: str | None = None) -> list[dict[str, str]]:
    """This module's serving containers, running or not, with their labels and state."""
    filters = ["--filter", f"label={LABEL}.serve=1"]
    if project:
        filters += ["--filter", f"label={LABEL}.project={project}"]
    ids = subprocess.run(
        ["docker", "ps", "-aq", *filters], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    if not ids:
        return []
    inspected = json.loads(
        subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    )
    found = []
    for container in inspected:
        labels = container["Config"]["Labels"] or {}
        if not labels.get(f"{LABEL}.project", "").startswith(PREFIX):
            continue
        found.append(
            {
                "id": container["Id"],
                "endpoint": labels.get(f"{LABEL}.endpoint", ""),
                "version": labels.get(f"{LABEL}.version", ""),
                "status": container["State"]["Status"],
                "health": (container["State"].get("Health") or {}).get("Status", ""),
                "network": container["HostConfig"]["NetworkMode"],
                "restart": container["HostConfig"]["RestartPolicy"]["Name"],
            }
        )
    return found


@pytest.fixture(autouse=True)
def remove_serving_containers() -> Iterator[None]:
    """Serving containers outlive their task by design: the test removes every one it started."""
    assert serving_containers() == [], "a serving container of this module existed before the test"
    yield
    left = serving_containers()
    if left:
        subprocess.run(["docker", "rm", "-f", *[c["id"] for c in left]], capture_output=True, check=False)
    assert serving_containers() == []


def ask(container_id: str, port: int, path: str = "/") -> str:
    """GET http://127.0.0.1:<port><path> from inside the container (the engine has no bridge network)."""
    code = (
        "import urllib.request, sys; "
        f"print(urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=10).read().decode(), end='')"
    )
    result = subprocess.run(
        ["docker", "exec", container_id, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Outcome:
    run: Any
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def states(self) -> dict[str, str]:
        return {ti.task_id: ti.state for ti in self.run.get_task_instances()}

    def ti(self, task_id: str) -> Any:
        return next(t for t in self.run.get_task_instances() if t.task_id == task_id)


def load_dag(dags_folder: Path, name: str, valohai_yaml: str, files: dict[str, str]) -> Any:
    add_project(dags_folder, name, textwrap.dedent(valohai_yaml), files)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, name)
    return dag


def run(dag: Any, monkeypatch: pytest.MonkeyPatch, conf: dict[str, Any] | None = None) -> Outcome:
    """dag.test(), keeping each task's failure (dag.test() only logs it; see test_faults.py)."""
    from airflow.sdk.execution_time import supervisor

    errors: dict[str, list[str]] = {}
    original = supervisor.run_task_in_process

    def recording(ti: Any, task: Any, client: Any = None) -> Any:
        result = original(ti=ti, task=task, client=client)
        if result.error is not None:
            errors.setdefault(ti.task_id, []).append(str(result.error))
        return result

    monkeypatch.setattr(supervisor, "run_task_in_process", recording)
    return Outcome(dag.test(run_conf=conf), errors)


WSGI_YAML = f"""\
- step:
    name: train
    image: {BUSYBOX}
    command: printf %s {{parameter-value:weights}} > /valohai/outputs/weights.txt
    parameters:
      - {{name: weights, type: string, default: v1}}
- endpoint:
    name: predict
    image: {PYTHON}
    wsgi: predict:application
    files:
      - {{name: model, path: model/weights.txt}}
- pipeline:
    name: p
    nodes:
      - {{name: train, type: execution, step: train}}
      - {{name: deploy, type: deployment, deployment: digits, endpoints: [predict]}}
    edges:
      - [train.output.weights.txt, deploy.file.predict.model]
"""

PREDICT_PY = """\
import os
import time
from pathlib import Path

WEIGHTS = (Path(__file__).parent / "model" / "weights.txt").read_text()
if WEIGHTS == "hang":  # a model that never finishes loading: the server never listens
    print("loading the model forever", flush=True)
    time.sleep(3600)


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"prediction with {WEIGHTS} on port {os.environ['VALOHAI_PORT']}".encode()]
"""

SIDECAR = """\
deployments:
  digits: {serve: true, health_timeout_seconds: 12, health_interval_seconds: 1}
"""


def test_a_wsgi_endpoint_is_served_replaced_by_the_next_version_and_kept_when_one_fails(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag = load_dag(
        dags_folder,
        "srv-wsgi",
        WSGI_YAML,
        {
            "predict.py": PREDICT_PY,
            "model/weights.txt": "the repository's copy",
            "valohai-airflow.yaml": SIDECAR,
        },
    )

    first = run(dag, monkeypatch, {"train.parameter.weights": "v1"})
    assert first.states == {"train": "success", "deploy": "success"}, first.errors
    version1 = first.ti("deploy").xcom_pull(task_ids="deploy")["deployment"]["version_id"]
    (served,) = serving_containers("srv-wsgi")
    assert (served["endpoint"], served["version"], served["health"]) == ("predict", version1, "healthy")
    assert (
        served["network"] == "default" and served["restart"] == "unless-stopped"
    )  # no `network`: the engine's
    assert ask(served["id"], 8000) == "prediction with v1 on port 8000"  # the bundle's file, not the repo's
    (xcom,) = first.ti("deploy").xcom_pull(task_ids="deploy", key="valohai_serving")
    assert xcom["container"] == served["id"] and xcom["version_id"] == version1 and xcom["publish"] is None
    assert (
        SERVING_DIR / "srv-wsgi" / "digits" / version1 / "predict" / "repository" / "predict.py"
    ).is_file()

    second = run(dag, monkeypatch, {"train.parameter.weights": "v2"})
    assert second.states == {"train": "success", "deploy": "success"}, second.errors
    version2 = second.ti("deploy").xcom_pull(task_ids="deploy")["deployment"]["version_id"]
    assert version2 != version1
    (replacement,) = serving_containers("srv-wsgi")  # the first version's container is gone
    assert replacement["id"] != served["id"]
    assert (replacement["version"], replacement["health"]) == (version2, "healthy")
    assert ask(replacement["id"], 8000) == "prediction with v2 on port 8000"
    assert not (SERVING_DIR / "srv-wsgi" / "digits" / version1).exists()  # its tree went with it

    started = time.monotonic()
    third = run(dag, monkeypatch, {"train.parameter.weights": "hang"})
    waited = time.monotonic() - started
    assert third.states == {"train": "success", "deploy": "failed"}
    (message,) = third.errors["deploy"]
    assert "node 'deploy': endpoint 'predict' of deployment 'digits'" in message, message
    assert "did not become healthy within 12 s" in message and "health_timeout_seconds" in message, message
    assert "GET http://127.0.0.1:8000/: ConnectionRefusedError" in message, message  # the last probe's output
    assert "loading the model forever" in message, message  # the server's log
    assert "the previous version keeps serving" in message, message
    assert waited >= 12
    (still,) = serving_containers("srv-wsgi")  # no new container left; the old one serves on
    assert still["id"] == replacement["id"] and still["status"] == "running"
    assert ask(still["id"], 8000) == "prediction with v2 on port 8000"
    assert sorted(p.name for p in (SERVING_DIR / "srv-wsgi" / "digits").iterdir()) == [version2]


COMMAND_YAML = f"""\
- step:
    name: train
    image: {BUSYBOX}
    command: printf weights-from-train > /valohai/outputs/model.bin
- endpoint:
    name: files
    image: {PYTHON}
    port: 8123
    server-command:
      - echo serving from $(pwd) on $VALOHAI_PORT
      - python3 -m http.server $VALOHAI_PORT
    files:
      - {{name: model, path: static/model.bin}}
- endpoint:
    name: plain
    image: {BUSYBOX}
    port: 8125
    server-command: httpd -f -p 8125 -h /valohai/repository
    files:
      - {{name: model, path: static/model.bin}}
- endpoint:
    name: broken
    image: {PYTHON}
    port: 8124
    server-command: python3 -c "import sys; print('cannot start', flush=True); sys.exit(3)"
- pipeline:
    name: p
    nodes:
      - {{name: train, type: execution, step: train}}
      - {{name: deploy, type: deployment, deployment: static, endpoints: [files, plain]}}
      - {{name: deploy-broken, type: deployment, deployment: static-broken, endpoints: [broken], on-error: stop-next}}
    edges:
      - [train.output.model.bin, deploy.file.files.model]
      - [train.output.model.bin, deploy.file.plain.model]
"""


def test_server_command_endpoints_are_served_and_one_that_exits_fails_at_once(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sidecar = "network: none\ndeployments:\n  static: {serve: true, health_path: /static/model.bin}\n  static-broken: {serve: true, health_timeout_seconds: 120}\n"
    dag = load_dag(
        dags_folder,
        "srv-cmd",
        COMMAND_YAML,
        {"static/index.txt": "from the repo", "valohai-airflow.yaml": sidecar},
    )
    started = time.monotonic()
    outcome = run(dag, monkeypatch)
    seconds = time.monotonic() - started
    assert outcome.states == {"train": "success", "deploy": "success", "deploy-broken": "failed"}
    served, plain = sorted(serving_containers("srv-cmd"), key=lambda c: c["endpoint"])
    # the project's `network: none` reaches the servers
    assert (served["endpoint"], served["health"], served["network"]) == ("files", "healthy", "none")
    # an image without python3: busybox's httpd, health-checked with its wget (which wants a 2xx/3xx,
    # hence the health_path of a file both servers have)
    assert (plain["endpoint"], plain["health"], plain["network"]) == ("plain", "healthy", "none")
    fetched = subprocess.run(
        ["docker", "exec", plain["id"], "wget", "-q", "-O", "-", "http://127.0.0.1:8125/static/model.bin"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert fetched.stdout == "weights-from-train"
    assert ask(served["id"], 8123, "/static/model.bin") == "weights-from-train"
    assert ask(served["id"], 8123, "/static/index.txt") == "from the repo"  # the repository, read-only
    logs = subprocess.run(["docker", "logs", served["id"]], capture_output=True, text=True, check=True).stdout
    assert "serving from /valohai/repository on 8123" in logs
    write = subprocess.run(
        ["docker", "exec", served["id"], "touch", "/valohai/repository/new"], capture_output=True, text=True
    )
    assert write.returncode != 0 and "Read-only file system" in write.stderr

    (message,) = outcome.errors["deploy-broken"]
    assert "endpoint 'broken' of deployment 'static-broken'" in message, message
    assert "its server exited with code 3 before it became healthy" in message, message
    assert "cannot start" in message and "nothing else was serving it" in message, message
    assert seconds < 120  # an exited server fails at once, not after the health timeout


PUBLISH_YAML = f"""\
- endpoint:
    name: web
    image: {PYTHON}
    server-command: python3 -m http.server 8000
- pipeline:
    name: p
    nodes:
      - {{name: deploy, type: deployment, deployment: pub, endpoints: [web]}}
    edges: []
"""


def test_publish_needs_a_bridge_network_which_this_engine_lacks(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    networks = subprocess.run(
        ["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    if "bridge" in networks:
        pytest.skip("this engine has a bridge network: publishing would work here")
    sidecar = "deployments:\n  pub: {serve: true, publish: {web: 18000}}\n"
    dag = load_dag(dags_folder, "srv-pub", PUBLISH_YAML, {"valohai-airflow.yaml": sidecar})
    outcome = run(dag, monkeypatch)
    assert outcome.states == {"deploy": "failed"}
    (message,) = outcome.errors["deploy"]
    assert "endpoint 'web' of deployment 'pub'" in message and "127.0.0.1:18000" in message, message
    assert "`publish` needs an engine with a bridge network" in message, message
    assert serving_containers("srv-pub") == []
    assert not (SERVING_DIR / "srv-pub" / "pub").exists() or not any(
        (SERVING_DIR / "srv-pub" / "pub").iterdir()
    )
