"""Serving decisions without Docker or Airflow: the version's tree, command, health probe, labels, mounts.

The wsgi runner and the health probe are also run for real here, as local processes on 127.0.0.1,
the way the container runs them (`python3 -c …`, `/bin/sh -c …`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.engine.docker import healthcheck_config
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.bundles import DeploymentRequest, bundle_prefix, publish
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.manifest import Manifest, ManifestFile
from valohai_airflow.runtime.serving import (
    PROBE_SCRIPT,
    WSGI_RUNNER,
    ServingError,
    ServingRequest,
    directory_of,
    prepare_servers,
    remove_directory,
    version_dir,
)
from valohai_airflow.spec.sidecar import DeploymentSettings
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = """\
- step:
    name: train
    image: busybox
    command: date
- endpoint:
    name: predict
    image: python:3.11
    wsgi: app.server:wsgi_app
    files:
      - {name: model, path: models/model.pb}
- endpoint:
    name: raw
    image: busybox
    port: 8123
    server-command: [cd /valohai/repository, httpd -f -p 8123]
- pipeline:
    name: p
    nodes:
      - {name: train, type: execution, step: train}
      - {name: deploy, type: deployment, deployment: My Deployment, endpoints: [predict, raw]}
    edges:
      - [train.output.model.pb, deploy.file.predict.model]
"""
LABEL = "valohai-airflow"
KEY = ExecutionKey("proj__p", "manual__1", "deploy")


def published(tmp_path: Path, weights: bytes = b"weights") -> tuple[LocalStore, PipelinePlan, dict[str, Any]]:
    store = LocalStore(tmp_path / "store")
    plan = compile_text(YAML).pipelines[0]
    stored = store.put_bytes(weights, "proj__p/manual__1/train/-1/1/outputs/model.pb")
    manifest = Manifest(
        execution_id="e1",
        node="train",
        step="train",
        image="busybox",
        outputs=[
            ManifestFile(
                path="model.pb", uri=stored.uri, size=len(weights), sha256=hashlib.sha256(weights).hexdigest()
            )
        ],
    ).model_dump(mode="json")
    result = publish(
        DeploymentRequest(
            key=KEY,
            project_name="proj",
            pipeline=plan,
            node=plan.node("deploy"),
            upstream={"train": manifest},
            stores=StoreResolver(store),
        )
    )
    return store, plan, result["deployment"]


def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "app").mkdir(parents=True)
    (root / "app" / "server.py").write_text("def wsgi_app(environ, start_response): ...\n")
    (root / "models").mkdir()
    (root / "models" / "model.pb").write_text("stale copy in the repository")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "valohai.yaml").write_text(YAML)
    return root


def serving_request(
    tmp_path: Path, store: LocalStore, plan: PipelinePlan, deployment: dict[str, Any], **settings: Any
) -> ServingRequest:
    return ServingRequest(
        project_name="team/proj",
        project_root=project(tmp_path),
        node=plan.node("deploy"),
        deployment=deployment,
        settings=DeploymentSettings(serve=True, **settings),
        store=store,
        base_dir=tmp_path / "serving",
        label=LABEL,
        dag_id="team__proj__p",
        run_id="manual__1",
    )


def test_each_endpoint_gets_a_frozen_tree_command_probe_labels_and_the_engines_network(
    tmp_path: Path,
) -> None:
    store, plan, deployment = published(tmp_path)
    request = serving_request(tmp_path, store, plan, deployment, health_timeout_seconds=30)
    predict, raw = prepare_servers(request)
    version = deployment["version_id"]

    # the tree: the project folder's copy (no .git) with the bundle's file at its `path`, read-only
    root = version_dir(tmp_path / "serving", "team/proj", deployment["id"], version)
    assert predict.directory == root / "predict"
    repository = root / "predict" / "repository"
    assert predict.mounts == ((str(repository), "/valohai/repository", True),)
    assert (repository / "models" / "model.pb").read_bytes() == b"weights"  # the bundle's, not the stale one
    assert (repository / "app" / "server.py").is_file() and not (repository / ".git").exists()
    assert predict.working_dir == "/valohai/repository"
    (tmp_path / "project" / "app" / "server.py").write_text("edited later")
    assert (repository / "app" / "server.py").read_text().startswith("def wsgi_app")

    # commands: wsgi through the runner on the endpoint's port (Valohai's default 8000); server-command
    # as one /bin/sh script like a step's commands
    assert predict.port == 8000 and raw.port == 8123
    assert predict.command == ("python3", "-c", WSGI_RUNNER, "app.server:wsgi_app", "8000")
    assert raw.command == ("/bin/sh", "-c", "cd /valohai/repository\nhttpd -f -p 8123")
    assert predict.image == "python:3.11" and raw.image == "busybox"
    assert predict.environment == {
        "VALOHAI_PORT": "8000",
        "VH_DEFAULT_PREFIX": f"team/proj/My Deployment/{version}/predict",
        "PYTHONUNBUFFERED": "1",
    }

    # Docker's HEALTHCHECK: the probe on the container's own 127.0.0.1, in nanoseconds
    check = healthcheck_config(predict.healthcheck)
    assert check["test"] == ["CMD", "/bin/sh", "-c", PROBE_SCRIPT, "probe", "8000", "/"]
    assert (check["interval"], check["start_period"], check["retries"]) == (2_000_000_000, 30_000_000_000, 3)
    assert predict.health_timeout_seconds == 30

    # labels find the deployment's containers; the name carries deployment, endpoint and version
    assert predict.labels == {
        LABEL: "1",
        f"{LABEL}.serve": "1",
        f"{LABEL}.project": "team/proj",
        f"{LABEL}.deployment": deployment["id"],
        f"{LABEL}.deployment-name": "My Deployment",
        f"{LABEL}.endpoint": "predict",
        f"{LABEL}.version": version,
        f"{LABEL}.dag": "team__proj__p",
        f"{LABEL}.run": "manual__1",
    }
    assert predict.name == f"vh-serve-{deployment['id']}-predict-{version}"
    # no `network` in valohai-airflow.yaml: the engine's default network (None: Docker's `default`)
    assert predict.network_mode is None and predict.port_bindings == {} and predict.publish is None
    assert directory_of(predict.labels, tmp_path / "serving", LABEL) == predict.directory


def test_the_projects_network_reaches_every_server_that_publishes_nothing(tmp_path: Path) -> None:
    store, plan, deployment = published(tmp_path)
    request = dataclasses.replace(
        serving_request(tmp_path, store, plan, deployment, publish={"raw": 18123}), network="none"
    )
    predict, raw = prepare_servers(request)
    assert predict.network_mode == "none" and predict.spec.network_mode == "none"
    assert raw.network_mode == "bridge"  # a published port needs the bridge whatever the project says


def test_a_vhignored_folder_stays_out_of_the_served_tree(tmp_path: Path) -> None:
    """`.vhignore` applies to a served version's repository copy as to an execution's."""
    store, plan, deployment = published(tmp_path)
    request = serving_request(tmp_path, store, plan, deployment)
    (request.project_root / ".vhignore").write_text("raw-data/\n")
    (request.project_root / "raw-data").mkdir()
    (request.project_root / "raw-data" / "blob.bin").write_bytes(b"\0" * 1024 * 1024)
    predict, _ = prepare_servers(request)
    repository = predict.directory / "repository"
    assert (repository / "app" / "server.py").is_file() and (repository / ".vhignore").is_file()
    assert not (repository / "raw-data").exists()


def test_publish_asks_for_the_bridge_and_binds_127_0_0_1_only(tmp_path: Path) -> None:
    store, plan, deployment = published(tmp_path)
    predict, raw = prepare_servers(
        serving_request(tmp_path, store, plan, deployment, publish={"raw": 18123}, health_path="/healthz")
    )
    assert raw.network_mode == "bridge" and raw.port_bindings == {8123: ("127.0.0.1", 18123)}
    assert predict.network_mode is None and predict.port_bindings == {}
    assert raw.healthcheck.test[-2:] == ("8123", "/healthz")


def test_a_file_that_changed_in_the_store_is_refused(tmp_path: Path) -> None:
    store, plan, deployment = published(tmp_path)
    key = f"{bundle_prefix('My Deployment', deployment['version_id'])}/endpoints/predict/models/model.pb"
    store.put_bytes(b"tampered", key)
    with pytest.raises(
        ServingError, match=re.escape("'models/model.pb' in the store differs from bundle.json")
    ):
        prepare_servers(serving_request(tmp_path, store, plan, deployment))


def test_an_endpoint_file_through_a_repository_symlink_is_refused(tmp_path: Path) -> None:
    store, plan, deployment = published(tmp_path)
    request = serving_request(tmp_path, store, plan, deployment)
    outside = tmp_path / "outside"
    outside.mkdir()
    models = request.project_root / "models"
    (models / "model.pb").unlink()
    models.rmdir()
    models.symlink_to(outside)
    with pytest.raises(ServingError, match="through the repository's symlink 'models'"):
        prepare_servers(request)
    assert list(outside.iterdir()) == []  # nothing was written through it


def test_directories_are_only_found_inside_the_base(tmp_path: Path) -> None:
    base = tmp_path / "serving"
    labels = {
        f"{LABEL}.project": "proj",
        f"{LABEL}.deployment": "d",
        f"{LABEL}.version": "v1",
        f"{LABEL}.endpoint": "e",
    }
    assert directory_of(labels, base, LABEL) == base / "proj" / "d" / "v1" / "e"
    for key, value in ((".deployment", ".."), (".endpoint", "../../x"), (".deployment", "")):
        assert directory_of({**labels, f"{LABEL}{key}": value}, base, LABEL) is None
    assert directory_of({f"{LABEL}.project": "proj"}, base, LABEL) is None
    tree = base / "proj" / "d" / "v1" / "e" / "repository"
    tree.mkdir(parents=True)
    (base / "proj" / "d" / "v2").mkdir()
    remove_directory(base / "proj" / "d" / "v1" / "e")
    assert sorted(p.name for p in (base / "proj" / "d").iterdir()) == ["v2"]  # the empty v1 went too


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probe(port: int, path: str = "/") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", PROBE_SCRIPT, "probe", str(port), path],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_wsgi_runner_serves_and_the_probe_judges_it(tmp_path: Path) -> None:
    """The same runner and probe the container runs, here as local processes on 127.0.0.1."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "web.py").write_text(
        "def app(environ, start_response):\n"
        "    path = environ['PATH_INFO']\n"
        "    status = '200 OK' if path != '/broken' else '500 Internal Server Error'\n"
        "    start_response(status, [('Content-Type', 'text/plain')])\n"
        "    return [('hello ' + path).encode()]\n"
    )
    port = _free_port()
    closed = _probe(port)
    assert closed.returncode == 1 and "ConnectionRefusedError" in closed.stdout, closed
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    server = subprocess.Popen(
        [sys.executable, "-c", WSGI_RUNNER, "pkg.web:app", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while (result := _probe(port)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert result.returncode == 0 and f"GET http://127.0.0.1:{port}/: HTTP 200" in result.stdout, result
        missing = _probe(port, "/nothing-here")
        assert missing.returncode == 0  # a 200 here, but any answer below 500 means the server is up
        broken = _probe(port, "/broken")
        assert broken.returncode == 1 and "HTTP 500" in broken.stdout, broken
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert f"serving pkg.web:app with wsgiref on 0.0.0.0:{port}" in output
