"""Real Airflow for the end-to-end and browser tests: its api-server, scheduler, dag-processor and
triggerer (what `airflow standalone` runs) on 127.0.0.1.

One server for the tests/e2e package (stopped after its last test, so it does not load the rest of
the suite), shared by test_standalone.py, test_browser.py, test_bundles.py and others
(`airflow_server`; `airflow_deployment` starts another, as test_assets_s3.py does with the S3 store): a throwaway
AIRFLOW_HOME whose dags folder holds only the loader file, beside a Git DAG bundle of a local
repository holding only the loader file too (tests/e2e/git_bundle.py), SQLite, LocalExecutor,
SimpleAuthManager (the admin password is the one Airflow generates into AIRFLOW_HOME), free ports for the API server and the log servers,
and a DAG processor that looks for new files and re-parses known ones every few seconds. Everything the fixture starts is stopped by process group and by pid,
also when a test fails; containers of the runs it triggered are checked and removed by label.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.git_bundle import GitOrigin
from tests.support.seaweed import StoreBucket

EXAMPLE_DAG = "example__three-trainings"
LABEL = "valohai-airflow"
# Generous bounds: these are how long we are willing to wait, never what we assert on.
START_TIMEOUT = 240.0
PARSE_TIMEOUT = 180.0
RUN_TIMEOUT = 600.0
PROCESSOR_INTERVAL = 5
PYTHON_IMAGE = "valohai-airflow/python:3.11"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# `airflow standalone` minus the log servers (they listen on every interface; we stay on 127.0.0.1)
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}

T = TypeVar("T")


#: Modules that start an Airflow of their own (test_celery.py: tests/e2e/cluster.py; test_assets_s3.py:
#: `airflow_deployment` with the S3 store), in the order they run, before all the others.
OWN_AIRFLOW = ("test_celery.py", "test_assets_s3.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of OWN_AIRFLOW run before the modules that share `airflow_server`, which stays
    up until the package's last test, so two Airflow set-ups never run side by side on the
    machine's cores."""
    e2e = [i for i, item in enumerate(items) if Path(item.path).parent == Path(__file__).parent]
    if not e2e or e2e != list(range(e2e[0], e2e[-1] + 1)):
        return
    block = items[e2e[0] : e2e[-1] + 1]

    def rank(item: pytest.Item) -> int:
        name = Path(item.path).name
        return OWN_AIRFLOW.index(name) if name in OWN_AIRFLOW else len(OWN_AIRFLOW)

    block.sort(key=rank)  # stable: the rest keep their order
    items[e2e[0] : e2e[-1] + 1] = block


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, server: AirflowServer | None = None
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` (and the server's log tail)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (httpx.HTTPError, OSError) as error:
            last_error, value = error, None
        if value:
            return value
        if server is not None:
            server.check_alive()
        time.sleep(1.0)
    detail = f" (last error: {last_error!r})" if last_error else ""
    tail = f"\n{server.log_tail()}" if server else ""
    pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}{detail}{tail}")


@dataclass
class AirflowServer:
    """The running Airflow components and a logged-in REST client for them."""

    home: Path
    port: int
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    git_origin: GitOrigin | None = None  # the repository of the Git DAG bundle beside the dags folder
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def store(self) -> Path:
        return self.home / "valohai" / "store"

    @property
    def password(self) -> str:
        """The admin password SimpleAuthManager generated into AIRFLOW_HOME."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return str(passwords["admin"])

    def log_tail(self, lines: int = 30) -> str:
        tails = []
        for name in self.processes:
            path = self.logs / f"airflow-{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            tails.append(f"--- {path} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(tails)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                pytest.fail(f"airflow {name} exited with {process.returncode}:\n{self.log_tail()}")

    def listening(self) -> set[tuple[str, int]]:
        """Every TCP address the components and their children listen on."""
        return listening_addresses(self.processes.values())

    def token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": "admin", "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A REST API v2 call as the admin user."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        return httpx.request(method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        response = self.api("GET", path, params=params)
        response.raise_for_status()
        return response.json()

    def dags(self) -> dict[str, dict[str, Any]]:
        """Every DAG the API server knows that is not stale, by dag id."""
        found = self.get("/dags", limit=1000)["dags"]
        return {dag["dag_id"]: dag for dag in found}

    def wait_for_dag(self, dag_id: str, timeout: float = PARSE_TIMEOUT) -> dict[str, Any]:
        return wait_for(f"DAG {dag_id} in GET /api/v2/dags", lambda: self.dags().get(dag_id), timeout, self)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause and trigger `dag_id` with a run conf; returns the run id."""
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        run_id = f"e2e-{uuid.uuid4().hex[:12]}"
        self.run_ids.append(run_id)
        response = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": conf}
        )
        assert response.status_code == 200, response.text
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        return wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout, self)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def failures(self, dag_id: str, run_id: str, lines: int = 25) -> str:
        """The last log lines of every failed task instance of a run (for assertion messages)."""
        run = urllib.parse.quote(run_id, safe="")
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run}/taskInstances", limit=1000)["task_instances"]
        found = []
        for ti in (t for t in tis if t["state"] == "failed"):
            where = f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
            response = self.api("GET", where, params={"map_index": ti["map_index"], "full_content": True})
            text = response.text if response.status_code == 200 else f"(log: HTTP {response.status_code})"
            tail = "\n".join(text.splitlines()[-lines:])
            found.append(f"--- {ti['task_id']} [{ti['map_index']}] ---\n{tail}")
        return "\n".join(found) or "no failed task instance"

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return entry["value"]

    def runs(self) -> list[dict[str, Any]]:
        """Every run of every DAG, the scheduled ones too."""
        return list(self.get("/dags/~/dagRuns", limit=1000)["dag_runs"])

    def wait_until_idle(self, timeout: float = RUN_TIMEOUT) -> None:
        """Until no run is queued or running (unpausing a scheduled DAG starts its latest missed run)."""

        def idle() -> bool:
            runs = self.runs()
            self.run_ids = sorted({*self.run_ids, *(run["dag_run_id"] for run in runs)})
            return all(run["state"] not in ("queued", "running") for run in runs)

        wait_for("every run to finish", idle, timeout, self)

    def containers_of_our_runs(self, docker_host: str | None = None) -> list[str]:
        """The containers of every run we know of, on the default engine or on `docker_host`."""
        ids: list[str] = []
        engine = ["-H", docker_host] if docker_host else []
        for run_id in self.run_ids:
            listed = subprocess.run(
                ["docker", *engine, "ps", "-aq", "--filter", f"label={LABEL}.run={run_id}"],
                capture_output=True,
                text=True,
                check=False,
            )
            ids += listed.stdout.split()
        return ids


def listening_addresses(processes: Iterable[subprocess.Popen[bytes]]) -> set[tuple[str, int]]:
    """Every TCP address the processes and their children listen on."""
    addresses: set[tuple[str, int]] = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(process.pid)
            for member in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    addresses |= {
                        (c.laddr.ip, c.laddr.port)
                        for c in member.net_connections(kind="tcp")
                        if c.status == psutil.CONN_LISTEN
                    }
    return addresses


def start_component(
    command: list[str], *, home: Path, env: dict[str, str], log_file: Path, group: int, append: bool = False
) -> subprocess.Popen[bytes]:
    """`airflow <command>` in the background, its output to `log_file` (appended to, for a restart),
    in process group `group` (0: a new group led by it), so a set of components stops by group."""
    airflow = str(Path(sys.executable).parent / "airflow")
    with log_file.open("ab" if append else "wb") as log:
        return subprocess.Popen(
            [airflow, *command],
            cwd=home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=group,
        )


def _environment(home: Path, port: int) -> dict[str, str]:
    """The test process carries another AIRFLOW_HOME and unit-test mode; the server gets only its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"  # Airflow starts `airflow` via PATH
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # slow answers under load (SQLite, 2 cores, a browser) must not fail a task's start
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(PROCESSOR_INTERVAL),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(PROCESSOR_INTERVAL),
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
            # a DAG gone from the loader's output turns stale after this long (defaults 50 s + 60 s)
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "15",
            "AIRFLOW__SCHEDULER__PARSING_CLEANUP_INTERVAL": str(PROCESSOR_INTERVAL),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
    )
    return env


def _stop(server: AirflowServer, group: int) -> None:
    """SIGTERM to the components' process group and to every descendant (task supervisors make
    process groups of their own and stop their containers on TERM), SIGKILL to whatever is left
    after a minute; always by pid or by the group our first component leads."""
    alive: list[psutil.Process] = []
    for process in server.processes.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            alive += [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for sig, grace in ((signal.SIGTERM, 60.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        for member in alive:  # once each: a second TERM makes Airflow's components skip their cleanup
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                if os.getpgid(member.pid) != group:
                    member.send_signal(sig)
        _, alive = psutil.wait_procs(alive, timeout=grace)
        if not alive:
            break
        names = []
        for member in alive:
            with contextlib.suppress(psutil.Error):
                names.append(" ".join(member.cmdline())[:80])
        print(f"still running {grace:.0f} s after {sig.name}: {names}")
    for process in server.processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def artefacts_dir() -> Path:
    """Where screenshots and the server log are kept: $VALOHAI_AIRFLOW_ARTEFACTS or a temp dir."""
    configured = os.environ.get("VALOHAI_AIRFLOW_ARTEFACTS")
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="valohai-airflow-e2e-"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ne2e artefacts (screenshots, airflow log): {path}")
    return path


@contextlib.contextmanager
def airflow_deployment(
    logs: Path, *, store: StoreBucket | None = None, git_bundle: bool = True
) -> Iterator[AirflowServer]:
    """`airflow db migrate`, then api-server, scheduler, dag-processor and triggerer in one process
    group (what `airflow standalone` starts, minus the log servers it would bind to every
    interface: the API server reads the task logs from the shared AIRFLOW_HOME), their logs in
    `logs`. The artefact store is AIRFLOW_HOME/valohai/store, or `store` (an S3 bucket's prefix);
    `git_bundle` adds the Git DAG bundle beside the dags folder. Afterwards every component is
    stopped and no container of its runs may be left."""
    if subprocess.run(
        ["docker", "image", "inspect", PYTHON_IMAGE], capture_output=True, check=False
    ).returncode:
        pytest.fail(f"image {PYTHON_IMAGE} missing: run `make images`")
    logs.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="valohai-airflow-e2e-home-"))
    (home / "dags").mkdir()
    shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", home / "dags" / "valohai_dags.py")
    origin = GitOrigin.create(home / "git") if git_bundle else None
    server = AirflowServer(home=home, port=free_port(), logs=logs, git_origin=origin)
    env = _environment(home, server.port)
    if origin:
        env.update(origin.environment())
    if store:
        env.update(store.environment())
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, cwd=home, capture_output=True, check=False)
    assert migrate.returncode == 0, migrate.stdout.decode(errors="replace")[-3000:]
    group = 0
    started = time.monotonic()
    try:
        for name, command in COMPONENTS.items():
            log_file = logs / f"airflow-{name}.log"
            process = start_component(command, home=home, env=env, log_file=log_file, group=group)
            server.processes[name] = process
            group = group or process.pid
        print(
            f"airflow {', '.join(COMPONENTS)}: process group {group}, {server.base_url}, AIRFLOW_HOME {home}"
        )
        wait_for(
            "the API server to answer /api/v2/version",
            lambda: httpx.get(f"{server.base_url}/api/v2/version", timeout=5).status_code == 200,
            START_TIMEOUT,
            server,
        )
        wait_for(
            "the generated admin password file",
            lambda: (home / "simple_auth_manager_passwords.json.generated").exists(),
            START_TIMEOUT,
            server,
        )
        print(f"airflow answered after {time.monotonic() - started:.0f} s")
        yield server
    finally:
        if server.processes and all(p.poll() is None for p in server.processes.values()):
            # remember every run, so their containers can be checked after the stop
            with contextlib.suppress(httpx.HTTPError):
                server.run_ids = sorted({*server.run_ids, *(run["dag_run_id"] for run in server.runs())})
        if group:
            _stop(server, group)
        left = server.containers_of_our_runs()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)
        assert not left, f"containers left behind by the e2e runs: {left}"
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="package")
def airflow_server(artefacts_dir: Path) -> Iterator[AirflowServer]:
    """The Airflow the package's modules share: local store, the Git DAG bundle beside the dags folder."""
    with airflow_deployment(artefacts_dir) as server:
        yield server


@dataclass(frozen=True)
class ExampleRun:
    dag_id: str
    run_id: str
    conf: dict[str, Any]
    state: str


@pytest.fixture(scope="package")
def example_project(airflow_server: AirflowServer) -> Path:
    """The example project copied into the running Airflow's dags folder, its DAG listed by the API."""
    project = airflow_server.dags_folder / "example"
    shutil.copytree(REPO_ROOT / "dags" / "example", project)
    started = time.monotonic()
    airflow_server.wait_for_dag(EXAMPLE_DAG)
    print(f"{EXAMPLE_DAG} listed by the API {time.monotonic() - started:.0f} s after the copy")
    return project


@pytest.fixture(scope="package")
def example_run(airflow_server: AirflowServer, example_project: Path) -> ExampleRun:
    """The example pipeline triggered with changed parameters and waited for (the browser test
    looks at this run too)."""
    conf = {"train-fast.parameter.epochs": 7, "preprocess.parameter.test_fraction": 0.3}
    run_id = airflow_server.trigger(EXAMPLE_DAG, conf)
    started = time.monotonic()
    run = airflow_server.wait_for_run(EXAMPLE_DAG, run_id)
    print(f"run {run_id} of {EXAMPLE_DAG}: {run['state']} after {time.monotonic() - started:.0f} s")
    airflow_server.wait_until_idle()
    return ExampleRun(dag_id=EXAMPLE_DAG, run_id=run_id, conf=conf, state=str(run["state"]))
