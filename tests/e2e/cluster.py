"""Airflow on Celery as if on three machines, everything on 127.0.0.1 (for tests/e2e/test_celery.py).

The "central" machine runs Postgres (the metadata DB and Celery's result backend), Redis (the
broker), SeaweedFS (the S3 store), the API server, the scheduler and the DAG processor. Each of two
"worker machines" runs a Celery worker with its own hostname, queues, AIRFLOW_HOME, work dir,
input cache and Docker engine (a dockerd of its own: --data-root, --exec-root, --pidfile, a unix
socket, no bridge, no iptables; the test images loaded with `docker save | docker load`). Nothing
is shared between them but Postgres, Redis, S3 and the dags folder, so outputs that flow between
nodes on different workers can only travel through the S3 store.

Postgres is a cluster of its own (initdb and postgres from /usr/lib/postgresql/15/bin, as the
postgres user when we are root) in a temp dir; Redis is a redis-server of its own; both on free
ports of 127.0.0.1. Every process is started by us and stopped by pid or by the process group it
leads, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.e2e.conftest import AirflowServer, free_port, listening_addresses, start_component, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PASSWORD = "airflow-e2e"  # a throwaway cluster on 127.0.0.1, gone after the test
START_TIMEOUT = 120.0


def services_missing() -> str | None:
    """Why the cluster cannot start here (scripts/services.sh installs both on Debian), or None."""
    missing = [str(PG_BIN / "initdb")] if not (PG_BIN / "initdb").exists() else []
    missing += [] if shutil.which("redis-server") else ["redis-server"]
    missing += [] if shutil.which("dockerd") else ["dockerd"]
    return f"missing {', '.join(missing)} (make services)" if missing else None


def _stop_pid(process: subprocess.Popen[bytes] | None, first: signal.Signals, grace: float = 30.0) -> None:
    """`first` to the process (and its group when it leads one), SIGKILL after `grace` seconds."""
    if process is None or process.poll() is not None:
        return
    try:
        leads_group = os.getpgid(process.pid) == process.pid
    except ProcessLookupError:  # gone since poll()
        process.wait(timeout=10)
        return
    for sig, wait in ((first, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            if leads_group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return


class Postgres:
    """A Postgres 15 cluster of our own: `initdb` into a temp dir, `postgres` on 127.0.0.1:<port>."""

    def __init__(self, root: Path) -> None:
        self.root = root / "postgres"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"
        # initdb refuses to run as root: the cluster belongs to Debian's postgres user then
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow:{PG_PASSWORD}@127.0.0.1:{self.port}/airflow"

    def start(self) -> None:
        data, sockets = self.root / "data", self.root / "sockets"
        for directory in (self.root, sockets):
            directory.mkdir(parents=True, exist_ok=True)
        password = self.root / "password"
        password.write_text(PG_PASSWORD)
        if self.user:
            for path in (self.root, sockets, password):
                shutil.chown(path, self.user, self.user)
        initdb = subprocess.run(
            [
                *(PG_BIN / "initdb", "-D", data, "-U", "airflow", f"--pwfile={password}"),
                *("--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"),
            ],
            user=self.user,
            capture_output=True,
            check=False,
        )
        assert initdb.returncode == 0, initdb.stderr.decode(errors="replace")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(
                        PG_BIN / "postgres",
                        "-D",
                        data,
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-k",
                        sockets,
                    ),
                    # a test database: durability off, room for every component's connection pool
                    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                    *("-c", "max_connections=300"),
                ],
                user=self.user,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        import psycopg2

        def create_database() -> bool:
            try:
                connection = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user="airflow", password=PG_PASSWORD, dbname="postgres"
                )
            except psycopg2.OperationalError:
                assert self.process is not None and self.process.poll() is None, self.log.read_text()
                return False
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
            connection.close()
            return True

        wait_for("Postgres to accept connections", create_database, START_TIMEOUT)

    def stop(self) -> None:
        _stop_pid(self.process, signal.SIGINT)  # SIGINT: Postgres's fast shutdown


class Redis:
    """A redis-server of our own on 127.0.0.1:<port>; it saves its data on SIGTERM (its default
    save points) and reloads it when started again in the same dir, like a restarted service."""

    def __init__(self, root: Path) -> None:
        self.root = root / "redis"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    shutil.which("redis-server") or "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--dir",
                    str(self.root),
                    "--protected-mode",
                    "yes",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        import redis

        def ping() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2).ping())
            except redis.RedisError:
                return False

        wait_for("Redis to answer PING", ping, START_TIMEOUT)

    def stop(self) -> None:
        _stop_pid(self.process, signal.SIGTERM)
        self.process = None


class Engine:
    """A Docker engine of our own: dockerd with its own data root, exec root (and so its own
    containerd), pid file and unix socket; no bridge, no iptables, no TCP."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.root = root / f"engine-{name}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "docker.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "dockerd.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", "-H", self.url, *args], capture_output=True, text=True, check=False, **kwargs
        )
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result

    def start(self, images: Path) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(
                        "dockerd",
                        "--data-root",
                        str(self.root / "data"),
                        "--exec-root",
                        str(self.root / "exec"),
                    ),
                    *("--pidfile", str(self.root / "docker.pid"), "-H", self.url),
                    *("--bridge=none", "--iptables=false", "--ip-masq=false"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            return self.docker("info", check=False).returncode == 0

        wait_for(f"dockerd of worker {self.name}", answers, START_TIMEOUT)
        with images.open("rb") as tar:
            self.docker("load", "-q", stdin=tar)

    def containers(self, *labels: str) -> list[dict[str, str]]:
        """Every container (running or not) carrying all `labels` (`key` or `key=value`)."""
        filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
        listed = self.docker("ps", "-a", *filters, "--format", "{{.ID}} {{.State}}")
        rows = [line.split() for line in listed.stdout.splitlines() if line.strip()]
        return [{"id": row[0], "state": row[1]} for row in rows]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(AssertionError):
            left = [c["id"] for c in self.containers()]
            if left:
                self.docker("rm", "-f", *left, check=False)
        _stop_pid(self.process, signal.SIGTERM)


@dataclass
class Worker:
    """One Celery worker "machine": its hostname, queues, AIRFLOW_HOME and Docker engine."""

    name: str
    queues: tuple[str, ...]
    home: Path
    engine: Engine
    env: dict[str, str]
    log: Path
    starts: int = 0

    @property
    def hostname(self) -> str:
        return f"worker-{self.name}"

    @property
    def component(self) -> str:
        return f"worker-{self.name}"

    def start(self, server: AirflowServer) -> None:
        """`airflow celery worker` in a process group of its own, waited for until Celery says
        it is ready (after the worker-start cleanup of valohai_airflow.airflow.worker)."""
        offset = self.log.stat().st_size if self.starts and self.log.exists() else 0
        command = [
            *("celery", "worker", "--queues", ",".join(self.queues), "--concurrency", "2"),
            # the log server would listen on every interface; the test reads the log files
            *("--celery-hostname", self.hostname, "--skip-serve-logs", "--without-mingle"),
        ]
        process = start_component(
            command, home=self.home, env=self.env, log_file=self.log, group=0, append=bool(self.starts)
        )
        server.processes[self.component] = process
        self.starts += 1

        def ready() -> bool:
            with self.log.open("rb") as log:
                log.seek(offset)
                return f"celery@{self.hostname} ready".encode() in log.read()

        wait_for(f"Celery worker {self.hostname} to be ready", ready, START_TIMEOUT, server)

    def kill(self, server: AirflowServer) -> list[int]:
        """SIGKILL to the worker and every process under it (its pool, the task supervisors and
        task processes, which lead process groups of their own), as when its machine dies. The
        node containers it started keep running on its engine."""
        process = server.processes.pop(self.component)
        members = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        for member in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)
        psutil.wait_procs(members, timeout=10)
        process.wait(timeout=10)
        return [m.pid for m in members]

    def task_logs(self) -> str:
        """Every task log this worker wrote (its logs stay on its machine: no log server here)."""
        logs = sorted((self.home / "logs").rglob("attempt=*.log"))
        return "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')[-4000:]}" for p in logs)


@dataclass
class Cluster:
    root: Path
    server: AirflowServer
    postgres: Postgres
    redis: Redis
    workers: dict[str, Worker] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)
    s3: Any = None

    def listening(self) -> set[tuple[str, int]]:
        """Every TCP address the Airflow components, Postgres, Redis, SeaweedFS and the engines
        (and their children) listen on."""
        services = [self.postgres.process, self.redis.process, getattr(self.s3, "process", None)]
        services += [engine.process for engine in self.engines.values()]
        return self.server.listening() | listening_addresses(p for p in services if p is not None)

    def worker_by_hostname(self, hostname: str) -> Worker:
        return next(w for w in self.workers.values() if w.hostname == hostname)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.server.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        )

    def wait_for_ti(
        self, dag_id: str, run_id: str, task_id: str, test: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            for ti in self.task_instances(dag_id, run_id):
                if ti["task_id"] == task_id and test(ti):
                    return ti
            return None

        return wait_for(f"{task_id} of {run_id} {what}", probe, 300.0, self.server)

    def diagnosis(self, dag_id: str, run_id: str) -> str:
        """Task states and the workers' task logs, for assertion messages."""
        states = {
            (ti["task_id"], ti["map_index"]): (ti["state"], ti["hostname"], ti["try_number"])
            for ti in self.task_instances(dag_id, run_id)
        }
        logs = "\n".join(w.task_logs()[-6000:] for w in self.workers.values())
        return f"{states}\n{logs}\n{self.server.log_tail(15)}"


def secrets_env() -> dict[str, str]:
    """What must be equal on every machine: the signing secrets of task tokens and log fetches."""
    return {
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }


__all__ = ["Cluster", "Engine", "Postgres", "Redis", "Worker", "secrets_env", "services_missing"]


def wait_until(probe: Callable[[], bool], timeout: float) -> bool:
    """Poll without failing: True once `probe` is, False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.5)
    return False
