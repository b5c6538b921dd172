"""A Python client for running valohai-airflow DAGs through Airflow's REST API (v2, Airflow 3).

Trigger a pipeline, step or task blueprint DAG with a run conf and a title (the run's note), wait for
it with progress, list a DAG's runs, read each node's manifest (its XCom return value) and download
a node's outputs from the store the manifest names.

Where Airflow is: `AIRFLOW_URL` (or `VALOHAI_AIRFLOW_URL`), and either a token (`AIRFLOW_TOKEN`) or a
user and password (`AIRFLOW_USERNAME`/`AIRFLOW_PASSWORD`: a JWT from `POST /auth/token`, as
SimpleAuthManager and FAB issue), from the environment or else `client.toml` in
`$XDG_CONFIG_HOME/valohai-airflow/` (keys `url`, `token`, `username`, `password`, and
`adhoc_max_size`, `run --adhoc`'s limit). Store credentials for S3 outputs come from boto3's usual
environment.
"""

from __future__ import annotations

import os
import time
import tomllib
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.manifest import Manifest, load_manifest
from valohai_airflow.runtime.reuse_nodes import ReuseRequest
from valohai_airflow.store.resolver import StoreResolver

#: Run states after which nothing more happens.
FINISHED = frozenset({"success", "failed"})
_SETTINGS = ("url", "token", "username", "password", "adhoc_max_size")
_HINT = (
    "set AIRFLOW_URL and AIRFLOW_TOKEN (or AIRFLOW_USERNAME and AIRFLOW_PASSWORD), "
    "or url/token in ~/.config/valohai-airflow/client.toml"
)


class ClientError(ValohaiAirflowError):
    """Airflow unreachable, a token refused, a DAG or run Airflow does not know."""


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "valohai-airflow" / "client.toml"


@dataclass(frozen=True)
class ClientSettings:
    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    adhoc_max_size: str | None = None  # `run --adhoc`'s limit, e.g. `500m` (runtime/adhoc.py's default)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, path: Path | None = None) -> ClientSettings:
        """The environment first, then the config file; no URL at all is an error with the hint."""
        environ = os.environ if environ is None else environ
        path = config_path() if path is None else path
        found: dict[str, str] = {}
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as error:
                raise ClientError(f"{path}: {error}", hint="fix or remove the file") from error
            found = {key: str(data[key]) for key in _SETTINGS if data.get(key) is not None}
        for key in _SETTINGS:
            for name in (f"VALOHAI_AIRFLOW_{key.upper()}", f"AIRFLOW_{key.upper()}"):
                if environ.get(name):
                    found[key] = environ[name]
                    break
        if "url" not in found:
            raise ClientError("no Airflow URL configured", hint=_HINT)
        return cls(
            found["url"].rstrip("/"),
            found.get("token"),
            found.get("username"),
            found.get("password"),
            found.get("adhoc_max_size"),
        )


@dataclass(frozen=True)
class NodeState:
    task_id: str
    map_index: int
    state: str | None
    try_number: int


class AirflowClient:
    """One Airflow API server; every method is one or a few REST calls."""

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        stores: StoreResolver | None = None,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        """`http`: an httpx client of your own to send through (a proxy, custom TLS, an in-process
        app); its base URL must be the server's."""
        self.settings = settings or ClientSettings.load()
        self.stores = stores or StoreResolver()
        self._http = http or httpx.Client(base_url=self.settings.url, timeout=timeout)
        self._token = self.settings.token

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ClientError(
                f"Airflow at {self.settings.url} is unreachable ({type(error).__name__}: {error})",
                hint="check AIRFLOW_URL (or url in client.toml) and that the API server runs",
            ) from error

    def _login(self) -> str:
        if self._token is not None:
            return self._token
        if not (self.settings.username and self.settings.password):
            raise ClientError(f"no token for Airflow at {self.settings.url}", hint=_HINT)
        response = self._send(
            "POST",
            "/auth/token",
            json={"username": self.settings.username, "password": self.settings.password},
        )
        if response.status_code not in (200, 201):
            raise ClientError(
                f"Airflow at {self.settings.url} refused user {self.settings.username!r} "
                f"(HTTP {response.status_code})",
                hint="check AIRFLOW_USERNAME and AIRFLOW_PASSWORD, or set AIRFLOW_TOKEN",
            )
        self._token = str(response.json()["access_token"])
        return self._token

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A REST API v2 call with the token; a refused token is a ClientError, any other status the caller's."""
        headers = {"Authorization": f"Bearer {self._login()}"}
        response = self._send(method, f"/api/v2{path}", headers=headers, **kwargs)
        if response.status_code in (401, 403):
            raise ClientError(
                f"Airflow at {self.settings.url} refused the token (HTTP {response.status_code})",
                hint="set a valid AIRFLOW_TOKEN, or AIRFLOW_USERNAME and AIRFLOW_PASSWORD",
            )
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST API v2 call; its JSON body, or a ClientError saying what went wrong."""
        response = self._call(method, path, **kwargs)
        if response.status_code >= 400:
            raise ClientError(
                f"{method} {self.settings.url}/api/v2{path}: HTTP {response.status_code}: {_detail(response)}"
            )
        return response.json() if response.content else None

    def every(self, path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every entry of a paged list: the API server cuts each page at its `[api]
        maximum_page_limit` (100 by default), so a big run's task instances take several pages."""
        entries: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", path, params={**params, "offset": len(entries)})
            entries += page[key]
            if not page[key] or len(entries) >= page["total_entries"]:
                return entries

    def check(self, dag_id: str) -> dict[str, Any]:
        """The DAG as Airflow knows it: connection, token and DAG checked before anything starts."""
        response = self._call("GET", f"/dags/{_q(dag_id)}")
        if response.status_code == 404:
            raise ClientError(
                f"Airflow at {self.settings.url} has no DAG {dag_id!r}",
                hint="is the project in the dags folder, and has the DAG processor parsed it? (the DAG id "
                "starts with the project's folder name: `run --project NAME` names a deployed project "
                "whose folder is named otherwise)",
            )
        if response.status_code >= 400:
            raise ClientError(f"GET /dags/{dag_id}: HTTP {response.status_code}: {_detail(response)}")
        return dict(response.json())

    # --- runs ------------------------------------------------------------------------------------

    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        *,
        title: str | None = None,
        reuse: ReuseRequest | None = None,
        plan: PipelinePlan | None = None,
    ) -> str:
        """Unpause the DAG and start a run with `conf`; the title is the run's note; `reuse` takes
        nodes from an earlier run of the DAG (checked against `plan`, the DAG's compiled plan, before
        any call when given). Returns the run id."""
        conf = {**(conf or {}), **(reuse.conf(plan) if reuse is not None else {})}
        self.check(dag_id)
        self.request("PATCH", f"/dags/{_q(dag_id)}", json={"is_paused": False})
        body: dict[str, Any] = {
            "dag_run_id": f"vh-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
            "logical_date": None,
            "conf": dict(conf or {}),
        }
        if title:
            body["note"] = title
        return str(self.request("POST", f"/dags/{_q(dag_id)}/dagRuns", json=body)["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def runs(self, dag_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The DAG's runs, newest first."""
        found = self.request(
            "GET", f"/dags/{_q(dag_id)}/dagRuns", params={"limit": limit, "order_by": "-run_after"}
        )
        return list(found["dag_runs"])

    def emit_asset_event(self, uri: str, extra: Mapping[str, Any]) -> dict[str, Any] | None:
        """An event of the Asset `uri` (`POST /assets/events` takes its id); None when Airflow has no
        such Asset: no DAG declares it, so nothing would start."""
        found = self.every("/assets", "assets", uri_pattern=uri)
        asset = next((a for a in found if a["uri"] == uri), None)  # the pattern is a substring
        if asset is None:
            return None
        return dict(
            self.request("POST", "/assets/events", json={"asset_id": asset["id"], "extra": dict(extra)})
        )

    def nodes(self, dag_id: str, run_id: str) -> list[NodeState]:
        """Every task instance of the run (a task node's executions by map index)."""
        found = self.every(f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances")
        return [
            NodeState(ti["task_id"], int(ti["map_index"]), ti["state"], int(ti["try_number"] or 0))
            for ti in found
        ]

    def wait(
        self,
        dag_id: str,
        run_id: str,
        *,
        on_progress: Callable[[list[NodeState]], None] | None = None,
        poll: float = 3.0,
        timeout: float | None = None,
    ) -> str:
        """Poll until the run finishes; `on_progress` sees the node states at every poll, the last
        time after the run finished. Returns the run's final state ("success" or "failed")."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = str(self.run(dag_id, run_id)["state"])
            if on_progress is not None:
                on_progress(self.nodes(dag_id, run_id))
            if state in FINISHED:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)

    def stop(self, dag_id: str, run_id: str, node: str | None = None) -> None:
        """Mark the run (or one node's task) failed: Airflow stops its running tasks."""
        if node is None:
            self.request("PATCH", f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", json={"state": "failed"})
            return
        self.request(
            "PATCH",
            f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(node)}",
            json={"new_state": "failed"},
        )

    # --- results ---------------------------------------------------------------------------------

    def manifests(self, dag_id: str, run_id: str) -> list[Manifest]:
        """Each finished node's manifest (a task node's: one per execution), in task order."""
        found = []
        for node in self.nodes(dag_id, run_id):
            value = self._xcom(dag_id, run_id, node.task_id, node.map_index)
            if isinstance(value, Mapping) and "execution_id" in value:
                found.append(load_manifest(value, self.stores))
        return found

    def _xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> Any:
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/xcomEntries/return_value"
        response = self._call("GET", path, params={"map_index": map_index})
        if response.status_code == 404:  # a node that has not finished (or skipped) has none
            return None
        if response.status_code >= 400:
            raise ClientError(f"GET {path}: HTTP {response.status_code}: {_detail(response)}")
        return response.json().get("value")

    def manifest(self, dag_id: str, run_id: str, node: str) -> list[Manifest]:
        """One node's manifests; an unknown node is an error naming the run's nodes."""
        found = [m for m in self.manifests(dag_id, run_id) if m.node == node]
        if not found:
            known = sorted({m.node for m in self.manifests(dag_id, run_id)})
            raise ClientError(
                f"run {run_id} of {dag_id} has no finished node {node!r}",
                hint=f"nodes with results: {', '.join(known) or 'none'}",
            )
        return found

    def find_execution(self, dag_id: str, execution_id: str, runs: int = 100) -> Manifest:
        """The manifest of a Valohai execution id (VH_EXECUTION_ID) among the DAG's latest runs."""
        for run in self.runs(dag_id, limit=runs):
            for manifest in self.manifests(dag_id, run["dag_run_id"]):
                if manifest.execution_id == execution_id:
                    return manifest
        raise ClientError(f"no execution {execution_id} in the last {runs} runs of {dag_id}")

    def download(self, manifests: list[Manifest], dest: Path) -> list[Path]:
        """The outputs of the manifests into `dest` (see `download_outputs`)."""
        return download_outputs(self.stores, manifests, dest)

    def logs(self, dag_id: str, run_id: str, node: str) -> Iterator[str]:
        """The log lines of every try of the node's task instances."""
        for ti in self.nodes(dag_id, run_id):
            if ti.task_id == node:
                for attempt in range(1, ti.try_number + 1):
                    yield from self.log_lines(dag_id, run_id, ti, attempt)

    def log_lines(self, dag_id: str, run_id: str, ti: NodeState, attempt: int | None = None) -> list[str]:
        """One try's log (default: the latest) as lines."""
        attempt = ti.try_number if attempt is None else attempt
        if attempt < 1:
            return []
        path = f"/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(ti.task_id)}/logs/{attempt}"
        found = self.request("GET", path, params={"map_index": ti.map_index, "full_content": True})
        return [_log_line(entry) for entry in (found or {}).get("content") or []]


def download_outputs(stores: StoreResolver, manifests: list[Manifest], dest: Path) -> list[Path]:
    """The outputs of the manifests into `dest` by their paths: one node's straight into it, several
    nodes' each into `dest/<node>/`, and a task node's executions into `<map index>/` below that (the
    same path from two nodes or executions must not overwrite the other)."""
    several = len({m.node for m in manifests}) > 1
    written = []
    for manifest in manifests:
        folder = dest / manifest.node if several else dest
        folder = folder if manifest.map_index < 0 else folder / str(manifest.map_index)
        for output in manifest.outputs:
            if output.uri is None:
                continue
            target = _inside(folder, output.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            written.append(stores.get_file(output.uri, target))
    return written


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:500]


def _inside(folder: Path, relative: str) -> Path:
    """`relative` below `folder`; a path that climbs out is refused (manifests come over the network)."""
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise ClientError(f"output path {relative!r} leaves {folder}")
    return target


def _log_line(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return str(entry)
    text = str(entry.get("event", ""))
    when = entry.get("timestamp")
    return f"[{when}] {text}" if when else text
