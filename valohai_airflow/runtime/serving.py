"""Serving a published deployment version locally, without Airflow: what each endpoint's container runs.

On Valohai a deployment version is an image built from the endpoint's `image` with the code
repository in it and every endpoint file "in the same directory as your code, modified by the path
property" (docs.valohai.com, valohai-yaml/endpoint); the server listens on the endpoint's `port`
(default 8000) and sees `VALOHAI_PORT` (valohai-utils reads it to tell a deployment from an
execution) and `VH_DEFAULT_PREFIX` (`<project>/<deployment>/<version>/<endpoint>` here; Valohai's
starts with the organisation).

Here the version becomes a directory per endpoint, `<base>/<project>/<deployment id>/<version>/
<endpoint>/repository/`: a copy of the project folder (same exclusions as execution work dirs)
with the bundle's endpoint files laid over it at their `path`, taken from the store and checked
against `bundle.json`'s sha256. The container gets it read-only at `/valohai/repository`, its
working directory: a frozen copy, so editing the dags folder never changes a running version (an
image on Valohai does not change either).

The command: `server-command` as one script (`execution.script_command`, like a step's commands);
`wsgi: module[:callable]` through a small runner on the standard library's `wsgiref` (threaded),
run by the image's `python3` (the callable defaults to `application`, gunicorn's default). A real
deployment would serve WSGI with gunicorn or uWSGI; wsgiref is what every Python image has.

Health: the engine's health check (Docker's own HEALTHCHECK), set when the container is created; it runs inside the container,
so it reaches the server on the container's own 127.0.0.1 on any network, `none` too. It GETs
`health_path` with the image's `python3` (healthy below HTTP 500: a 404 still means the server
answers) or, without python3, `wget` (healthy on 2xx/3xx). The output of the last probe is what a
failed deployment reports.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from valohai_airflow.engine.interface import ContainerSpec, HealthCheck
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.runtime.bundles import bundle_prefix
from valohai_airflow.runtime.config_files import CONTAINER_ROOT
from valohai_airflow.runtime.execution import script_command
from valohai_airflow.runtime.ids import safe_segment
from valohai_airflow.runtime.outputs import sha256_file
from valohai_airflow.runtime.repository import RepositoryRules
from valohai_airflow.spec.endpoint import Endpoint
from valohai_airflow.spec.sidecar import DeploymentSettings
from valohai_airflow.store.base import ArtifactStore, StoreError, join_key, normalize_key

DEFAULT_PORT = 8000  # Valohai's default when an endpoint gives no `port`
REPOSITORY = f"{CONTAINER_ROOT}/repository"
DEFAULT_WSGI_CALLABLE = "application"
PROBE_TIMEOUT_SECONDS = 5
PROBE_RETRIES = 3

# python3 -c WSGI_RUNNER <module[:callable]> <port>
WSGI_RUNNER = """\
import importlib, os, socketserver, sys
from wsgiref.simple_server import WSGIServer, make_server

spec, port = sys.argv[1], int(sys.argv[2])
module_name, _, attribute = spec.partition(":")
sys.path.insert(0, os.getcwd())
app = importlib.import_module(module_name)
for part in (attribute or "application").split("."):
    app = getattr(app, part)


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


print(f"valohai-airflow: serving {spec} with wsgiref on 0.0.0.0:{port}", flush=True)
make_server("0.0.0.0", port, app, server_class=Server).serve_forever()
"""

# Inside the probe's shell script, in single quotes: no single quote may appear in it.
_PROBE_PY = """\
import http.client, sys
port, path = int(sys.argv[1]), sys.argv[2]
url = f"http://127.0.0.1:{port}{path}"
try:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    connection.request("GET", path)
    status = connection.getresponse().status
except Exception as error:
    print(f"GET {url}: {type(error).__name__}: {error}")
    sys.exit(1)
print(f"GET {url}: HTTP {status}")
sys.exit(0 if status < 500 else 1)
"""

# /bin/sh -c PROBE_SCRIPT probe <port> <path>; Docker kills a probe that outlives the probe timeout
# (no `wget -T`: Debian's static busybox crashes on it)
PROBE_SCRIPT = f"""\
port="$1"; path="$2"
if command -v python3 >/dev/null 2>&1; then
  exec python3 -c '{_PROBE_PY}' "$port" "$path"
fi
if command -v wget >/dev/null 2>&1; then
  if answer=$(wget -q -O /dev/null "http://127.0.0.1:$port$path" 2>&1); then
    echo "GET http://127.0.0.1:$port$path: answered"; exit 0
  fi
  echo "GET http://127.0.0.1:$port$path: ${{answer:-wget failed}}"; exit 1
fi
echo "cannot probe 127.0.0.1:$port: the image has neither python3 nor wget"; exit 1
"""

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


class ServingError(ValohaiAirflowError):
    """A version that cannot be served: a bundle that is not complete, a file that changed, a bad path."""


@dataclass(frozen=True)
class EndpointServer:
    """Everything the engine needs to run one endpoint of one deployment version."""

    endpoint: str
    deployment: str  # the deployment's name in valohai.yaml
    deployment_id: str  # its store segment
    version: str
    image: str
    command: tuple[str, ...]
    working_dir: str
    environment: Mapping[str, str]
    mounts: tuple[tuple[str, str, bool], ...]  # (host path, container path, read only)
    labels: Mapping[str, str]
    name: str
    port: int  # where the server listens inside the container
    publish: int | None  # host port on 127.0.0.1, only for engines with a bridge network
    healthcheck: HealthCheck
    health_timeout_seconds: float
    directory: Path  # the version's host directory for this endpoint (removed with the container)
    network: str | None = None  # the project's `network` in valohai-airflow.yaml; None: the engine's default

    @property
    def network_mode(self) -> str | None:
        """The project's network (None: the engine's default), unless a host port is published, which
        needs the engine's bridge."""
        return "bridge" if self.publish is not None else self.network

    @property
    def port_bindings(self) -> dict[int, tuple[str, int]]:
        return {self.port: ("127.0.0.1", self.publish)} if self.publish is not None else {}

    def describe(self) -> str:
        return f"endpoint {self.endpoint!r} of deployment {self.deployment!r} version {self.version}"

    @property
    def spec(self) -> ContainerSpec:
        """The container the engine creates for this endpoint."""
        return ContainerSpec(
            name=self.name,
            image=self.image,
            command=self.command,
            working_dir=self.working_dir,
            environment=self.environment,
            mounts=self.mounts,
            labels=self.labels,
            network_mode=self.network_mode,
            port_bindings=self.port_bindings,
            healthcheck=self.healthcheck,
        )


@dataclass(frozen=True)
class ServingRequest:
    project_name: str
    project_root: Path
    node: NodePlan
    deployment: Mapping[str, Any]  # the published manifest's `deployment`: id, version_id, name
    settings: DeploymentSettings
    store: ArtifactStore
    base_dir: Path  # host directory of the per-version trees (a path on the Docker host)
    label: str  # the label prefix every valohai-airflow container carries
    dag_id: str
    run_id: str
    network: str | None = None  # the project's `network`; None: the engine's default


def endpoint_port(endpoint: Endpoint) -> int:
    return int(endpoint.port) if endpoint.port is not None else DEFAULT_PORT


def endpoint_command(endpoint: Endpoint, port: int) -> tuple[str, ...]:
    """`server-command` as one script (several lines: the last one is the server), or the wsgi runner."""
    if endpoint.server_command is not None:
        return tuple(script_command("\n".join(endpoint.server_command)))
    assert endpoint.wsgi is not None  # the model requires exactly one of the two
    return ("python3", "-c", WSGI_RUNNER, endpoint.wsgi, str(port))


def health_check(port: int, settings: DeploymentSettings) -> HealthCheck:
    """Probe every `health_interval_seconds`; failures inside the health timeout do not count, so the
    status stays `starting` until the first good answer."""
    return HealthCheck(
        test=("CMD", "/bin/sh", "-c", PROBE_SCRIPT, "probe", str(port), settings.health_path),
        interval_seconds=float(settings.health_interval_seconds),
        timeout_seconds=float(PROBE_TIMEOUT_SECONDS),
        start_period_seconds=float(settings.health_timeout_seconds),
        retries=PROBE_RETRIES,
    )


def deployment_labels(label: str, project_name: str, deployment_id: str) -> dict[str, str]:
    """The labels that find every serving container of one deployment of one project."""
    return {f"{label}.serve": "1", f"{label}.project": project_name, f"{label}.deployment": deployment_id}


def version_dir(base_dir: Path, project_name: str, deployment_id: str, version: str) -> Path:
    return Path(base_dir) / safe_segment(project_name) / deployment_id / safe_segment(version)


def container_name(deployment_id: str, endpoint: str, version: str) -> str:
    return _NAME_UNSAFE.sub("_", f"vh-serve-{deployment_id}-{endpoint}-{version}")


def directory_of(labels: Mapping[str, str], base_dir: Path, label: str) -> Path | None:
    """The host directory a serving container's labels point at, or None for labels that do not
    name one inside `base_dir` (never remove anything else)."""
    try:
        project = labels[f"{label}.project"]
        deployment_id = labels[f"{label}.deployment"]
        version = labels[f"{label}.version"]
        endpoint = labels[f"{label}.endpoint"]
    except KeyError:
        return None
    if (
        not deployment_id
        or safe_segment(deployment_id) != deployment_id
        or safe_segment(endpoint) != endpoint
    ):
        return None
    path = version_dir(base_dir, project, deployment_id, version) / endpoint
    base = Path(base_dir).resolve()
    return path if path.resolve().is_relative_to(base) and path.resolve() != base else None


def remove_directory(path: Path) -> None:
    """Remove an endpoint's tree, and its version and deployment folders once they are empty."""
    shutil.rmtree(path, ignore_errors=True)
    for parent in (path.parent, path.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


def _inside(root: Path, relative: str) -> Path:
    """`root/relative` for an endpoint file, refusing a path through a symlink of the repository copy
    (writing through it would land outside the version's tree)."""
    try:
        clean = normalize_key(relative)
    except StoreError as error:
        raise ServingError(f"endpoint file path {relative!r} cannot be placed: {error}") from error
    current = root
    parts = clean.split("/")
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ServingError(
                f"endpoint file {clean!r} would be written through the repository's symlink {part!r}; "
                "give the file a `path` that does not pass through a symlink"
            )
    target = current / parts[-1]
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    return target


def materialise_endpoint(
    request: ServingRequest, bundle: Mapping[str, Any], endpoint: str, directory: Path
) -> Path:
    """`directory/repository`: the project folder's copy with the bundle's files of `endpoint` over it."""
    if directory.exists():
        shutil.rmtree(directory)
    repository = directory / "repository"
    RepositoryRules.load(request.project_root).copy(repository)
    files = bundle.get("endpoints", {}).get(endpoint, {}).get("files", [])
    if files:
        for entry in files:
            _inside(repository, str(entry["path"]))
        prefix = join_key(
            bundle_prefix(str(bundle["deployment"]), str(bundle["version_id"])), "endpoints", endpoint
        )
        request.store.get_tree(prefix, repository)
    for entry in files:
        local = repository / normalize_key(str(entry["path"]))
        if not local.is_file():
            raise ServingError(f"endpoint {endpoint!r}: file {entry['path']!r} is missing from the bundle")
        if entry.get("sha256") and sha256_file(local) != entry["sha256"]:
            raise ServingError(
                f"endpoint {endpoint!r}: file {entry['path']!r} in the store differs from bundle.json "
                "(its sha256 changed after publishing)"
            )
    return repository


def prepare_servers(request: ServingRequest) -> list[EndpointServer]:
    """Materialise the version's trees and decide each endpoint's container; nothing runs yet."""
    deployment_id = str(request.deployment["id"])
    version = str(request.deployment["version_id"])
    name = str(request.deployment.get("name") or request.node.deployment or deployment_id)
    try:
        bundle = request.store.read_json(join_key(bundle_prefix(name, version), "bundle.json"))
    except StoreError as error:
        raise ServingError(
            f"deployment {name!r} version {version}: no bundle.json to serve ({error})"
        ) from error
    specs = {e.name: e for e in request.node.endpoint_specs}
    base = version_dir(request.base_dir, request.project_name, deployment_id, version)
    servers: list[EndpointServer] = []
    for endpoint_name in request.node.endpoints:
        endpoint = specs[endpoint_name]
        port = endpoint_port(endpoint)
        directory = base / endpoint_name
        repository = materialise_endpoint(request, bundle, endpoint_name, directory)
        labels = {
            request.label: "1",
            **deployment_labels(request.label, request.project_name, deployment_id),
            f"{request.label}.deployment-name": name,
            f"{request.label}.endpoint": endpoint_name,
            f"{request.label}.version": version,
            f"{request.label}.dag": request.dag_id,
            f"{request.label}.run": request.run_id,
        }
        servers.append(
            EndpointServer(
                endpoint=endpoint_name,
                deployment=name,
                deployment_id=deployment_id,
                version=version,
                image=endpoint.image,
                command=endpoint_command(endpoint, port),
                working_dir=REPOSITORY,
                environment={
                    "VALOHAI_PORT": str(port),
                    "VH_DEFAULT_PREFIX": f"{request.project_name}/{name}/{version}/{endpoint_name}",
                    "PYTHONUNBUFFERED": "1",
                },
                mounts=((str(repository), REPOSITORY, True),),
                labels=labels,
                name=container_name(deployment_id, endpoint_name, version),
                port=port,
                publish=request.settings.publish.get(endpoint_name),
                network=request.network,
                healthcheck=health_check(port, request.settings),
                health_timeout_seconds=float(request.settings.health_timeout_seconds),
                directory=directory,
            )
        )
    return servers
