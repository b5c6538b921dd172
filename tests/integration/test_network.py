"""The Docker network of a node's container (`network` of valohai-airflow.yaml, a step's
`VH_DOCKER_NETWORK`) on a real engine, through `dag.test()`: a node `pip install`s a package from a
package index this test serves on the host's 127.0.0.1, which only a container on the `host` network
reaches; on `none` the same install fails. The engine here has no bridge network (`dockerd
--bridge=none`), so the engine's default cannot be shown online here: `host` and `none` are.

The image has no pip, so the step first fetches pip's own wheel (the one bundled with this test's
Python) from the same index with urllib and runs pip from it (`python3 pip.whl/pip install ...`).
"""

from __future__ import annotations

import base64
import ensurepip
import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PYTHON
from tests.integration.pipelines import run_pipeline, step

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PACKAGE = "vh-net-probe"
MODULE = "vh_net_probe"


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel of `vh-net-probe` 1.0 (a module with VALUE = 42)."""
    files = {
        f"{MODULE}.py": b"VALUE = 42\n",
        f"{MODULE}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n".encode(),
        f"{MODULE}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files[f"{MODULE}-1.0.dist-info/RECORD"] = (
        "\n".join([*record, f"{MODULE}-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    path = folder / f"{MODULE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[int]:
    """A PEP 503 simple index with the probe package, and pip's wheel at /pip.whl, on 127.0.0.1:<port>."""
    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not bundled:
        pytest.skip("this Python bundles no pip wheel (ensurepip/_bundled) to run pip from")
    root = tmp_path / "index"
    project = root / "simple" / PACKAGE
    project.mkdir(parents=True)
    wheel = _wheel(project)
    (project / "index.html").write_text(
        f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>\n'
    )
    (root / "simple" / "index.html").write_text(
        f'<html><body><a href="{PACKAGE}/">{PACKAGE}</a></body></html>\n'
    )
    (root / "pip.whl").write_bytes(bundled[-1].read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _install(port: int) -> str:
    index = f"http://127.0.0.1:{port}"
    return (
        f"python3 -c \"import urllib.request; urllib.request.urlretrieve('{index}/pip.whl', '/tmp/pip.whl')\" && "
        "python3 /tmp/pip.whl/pip install --disable-pip-version-check --no-cache-dir --break-system-packages "
        f"--retries 0 --timeout 10 --index-url {index}/simple/ {PACKAGE} && "
        f"python3 -c \"import json, {MODULE}; print(json.dumps({{'probe': {MODULE}.VALUE}}))\""
    )


def _pipeline(port: int) -> str:
    command = _install(port)
    return (
        step("online", command, image=PYTHON, extra="environment: online-box")
        + step("offline", command, image=PYTHON)
        + step(
            "asks",
            command,
            image=PYTHON,
            extra="environment-variables:\n  - {name: VH_DOCKER_NETWORK, default: host}",
        )
        + """\
- pipeline:
    name: p
    nodes:
      - {name: online, type: execution, step: online}
      - {name: offline, type: execution, step: offline}
      - {name: asks, type: execution, step: asks}
    edges: []
"""
    )


SIDECAR = """\
network: none                 # project-wide
environments:
  online-box: {network: host}
"""


def test_host_network_installs_from_the_index_and_none_cannot(
    dags_folder: Path,
    package_index: int,
    host_configs: list[dict[str, Any]],
) -> None:
    outcome = run_pipeline(
        dags_folder,
        "net-modes",
        _pipeline(package_index),
        files={"valohai-airflow.yaml": SIDECAR},
    )
    assert outcome.states == {"online": "success", "offline": "failed", "asks": "success"}, outcome.states
    assert outcome.xcom("online")["metadata"] == {"probe": 42}  # installed from the index and imported
    assert outcome.xcom("asks")["metadata"] == {"probe": 42}  # VH_DOCKER_NETWORK=host won over `none`
    (message,) = outcome.errors("offline")
    assert "'offline'" in message and "exited with code" in message, message
    assert "urlopen error" in message or "Network is unreachable" in message, message  # no way out
    # as the engine holds it: online and asks on the host's network, offline on none
    assert sorted(c["NetworkMode"] for c in host_configs) == ["host", "host", "none"]


def test_a_network_the_engine_lacks_names_it_and_who_asked(
    dags_folder: Path, host_configs: list[dict[str, Any]]
) -> None:
    valohai = (
        step("s", "echo never", extra="environment: team-box")
        + """\
- pipeline:
    name: p
    nodes:
      - {name: only, type: execution, step: s}
    edges: []
"""
    )
    sidecar = "environments:\n  team-box: {network: vh-no-such-network}\n"
    outcome = run_pipeline(dags_folder, "net-unknown", valohai, files={"valohai-airflow.yaml": sidecar})
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "no network 'vh-no-such-network'" in message, message
    assert "environment 'team-box' in valohai-airflow.yaml" in message, message
    assert "the container did not start" in message, message
    (config,) = host_configs  # created, never started, then removed
    assert config["NetworkMode"] == "vh-no-such-network"
    assert outcome.xcom("only") is None


def test_without_a_setting_the_container_gets_the_engines_default(
    dags_folder: Path, host_configs: list[dict[str, Any]]
) -> None:
    """No `network` anywhere: Docker's `default` (a normal engine's bridge; loopback only on this one)."""
    valohai = (
        step("s", "echo hi")
        + """\
- pipeline:
    name: p
    nodes:
      - {name: only, type: execution, step: s}
    edges: []
"""
    )
    outcome = run_pipeline(dags_folder, "net-default", valohai)
    assert outcome.states == {"only": "success"}
    (config,) = host_configs
    assert config["NetworkMode"] == "default"


def test_a_forbidden_vh_docker_network_fails_before_the_container(
    dags_folder: Path, host_configs: list[dict[str, Any]]
) -> None:
    valohai = (
        step("s", "echo never", extra="environment-variables:\n  - {name: VH_DOCKER_NETWORK, default: host}")
        + """\
- pipeline:
    name: p
    nodes:
      - {name: only, type: execution, step: s}
    edges: []
"""
    )
    sidecar = "network: none\nallow_vh_docker_network: false\n"
    outcome = run_pipeline(dags_folder, "net-forbidden", valohai, files={"valohai-airflow.yaml": sidecar})
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "'only'" in message and "VH_DOCKER_NETWORK='host'" in message, message
    assert "allow_vh_docker_network: false" in message and "the container was not started" in message, message
    assert host_configs == []  # no container was created
