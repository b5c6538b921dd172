"""A real kill: `airflow tasks test` in its own process, SIGTERM while the node's container runs.

What we found reading task-sdk 1.3.2 (`execution_time/task_runner.py`, `supervisor.py`):
- `task_runner.run()` installs a SIGTERM handler (`_on_term`) that calls `task.on_kill()` and
  then returns, so `execute()` goes on and the task fails. `airflow tasks test` (and `dag.test()`)
  run the task in-process through `InProcessTestSupervisor`, which calls that same `run()`, so a
  SIGTERM to the CLI process reaches `on_kill` directly.
- On a worker, the supervisor (`ActivitySubprocess.wait`) forwards SIGTERM/SIGINT to the task
  process, which reaches the same `_on_term`. When the task is marked failed from the UI/API the
  supervisor sends SIGTERM itself and escalates to SIGKILL after 5 s, so `on_kill` must be quick.
- Our `on_kill` force-removes the container at once (no `docker stop` grace), which also works
  for a PID 1 that ignores SIGTERM; `execute` then stores the outputs written so far and fails as
  stopped. A SIGKILL gives no hook at all: the container's guard process (`container_guard`)
  removes it once the task's process is gone; should the guard be gone too, the next try of the
  node removes it by label before starting (tested below).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, add_project

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

LABEL = "valohai-airflow"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
LOGICAL_DATE = "2026-01-01T00:00:00+00:00"
STORE = AIRFLOW_HOME / "valohai" / "store"
WORK = AIRFLOW_HOME / "valohai" / "work"


def containers(dag_id: str, *, running_only: bool = False) -> list[str]:
    args = ["docker", "ps", "--filter", f"label={LABEL}.dag={dag_id}", "--format", "{{.ID}} {{.Status}}"]
    if not running_only:
        args.insert(2, "-a")
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.25)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


@pytest.fixture
def project(dags_folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A one-node pipeline whose step runs `command`, serialized into the DB like a deployment."""
    command = request.param
    name = f"kill-{zlib.crc32(command.encode()) % 10_000}"
    yaml = textwrap.dedent(
        f"""\
        - step:
            name: s
            image: {BUSYBOX}
            command: {json.dumps(command)}
        - pipeline:
            name: p
            nodes:
              - name: only
                type: execution
                step: s
            edges: []
        """
    )
    add_project(dags_folder, name, yaml)
    subprocess.run([AIRFLOW, "dags", "reserialize"], check=True, capture_output=True, timeout=120)
    dag_id = f"{name}__p"
    yield dag_id
    left = containers(dag_id)
    if left:
        subprocess.run(
            ["docker", "rm", "-f", *[c.split()[0] for c in left]], capture_output=True, check=False
        )
    assert left == [], f"containers left behind: {left}"


def start_task(dag_id: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [AIRFLOW, "tasks", "test", dag_id, "only", LOGICAL_DATE],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )


SLEEP = "sleep 300"
IGNORES_TERM = "sh -c 'trap \"\" TERM; sleep 300 & wait'"


@pytest.mark.parametrize("project", [SLEEP, IGNORES_TERM], indirect=True, ids=["sleep", "pid1-ignores-term"])
def test_sigterm_removes_the_container(project: str, tmp_path: Path) -> None:
    dag_id = project
    log = tmp_path / "task.log"
    process = start_task(dag_id, log)
    try:
        wait_for(lambda: containers(dag_id, running_only=True), 90, "a running container", log)
        process.send_signal(signal.SIGTERM)
        gone = wait_for(lambda: not containers(dag_id), 15, "the container to be removed", log)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text()
    assert gone < 15
    assert process.returncode is not None
    assert "Removing container" in text, text[-3000:]  # our on_kill ran


WRITES_THEN_SLEEPS = "echo kept > /valohai/outputs/early.txt; echo '{\"epoch\": 1}'; sleep 300"


@pytest.mark.parametrize("project", [WRITES_THEN_SLEEPS], indirect=True, ids=["writes-then-sleeps"])
def test_sigterm_stores_the_outputs_written_so_far_and_says_stopped(project: str, tmp_path: Path) -> None:
    dag_id = project
    log = tmp_path / "task.log"
    process = start_task(dag_id, log)
    try:
        wait_for(
            lambda: list(WORK.glob(f"{dag_id}/**/outputs/early.txt")), 90, "the step's first output", log
        )
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: not containers(dag_id), 60, "the container to be removed", log)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = log.read_text()
    assert "the task was stopped (SIGTERM" in text, text[-3000:]
    assert "No such container" not in text and "404 Client Error" not in text, text[-3000:]
    (stored,) = STORE.glob(f"{dag_id}/**/outputs/early.txt")
    assert stored.read_text() == "kept\n"
    manifest = json.loads((stored.parent.parent / "manifest.json").read_text())
    assert manifest["status"] == "stopped" and [f["path"] for f in manifest["outputs"]] == ["early.txt"]


def guard_of(task_pid: int) -> int:
    """The pid of the container guard the task process started (from /proc, not our bookkeeping)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"valohai_airflow.airflow.container_guard" in argv and str(task_pid).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no container guard for pid {task_pid}")


@pytest.mark.parametrize("project", [SLEEP], indirect=True, ids=["sleep"])
def test_sigkill_container_is_removed_by_its_guard(project: str, tmp_path: Path) -> None:
    dag_id = project
    log = tmp_path / "task.log"
    process = start_task(dag_id, log)
    try:
        wait_for(lambda: containers(dag_id, running_only=True), 90, "a running container", log)
    finally:
        process.kill()  # SIGKILL: no handler runs in the task's process
        process.wait(timeout=30)
    wait_for(lambda: not containers(dag_id), 120, "the guard to remove the container (hang guard)", log)


@pytest.mark.parametrize("project", [SLEEP], indirect=True, ids=["sleep"])
def test_sigkill_leftover_is_removed_by_the_next_try(project: str, tmp_path: Path) -> None:
    """The last resort, when the guard is gone too (here: SIGKILLed first)."""
    dag_id = project
    log = tmp_path / "task.log"
    first = start_task(dag_id, log)
    try:
        wait_for(lambda: containers(dag_id, running_only=True), 90, "a running container", log)
        os.kill(guard_of(first.pid), signal.SIGKILL)
    finally:
        first.kill()  # SIGKILL: no handler runs, the container survives its task
        first.wait(timeout=30)
    (leftover,) = containers(dag_id)
    second = start_task(dag_id, log)
    try:
        wait_for(
            lambda: (ids := containers(dag_id)) and leftover.split()[0] not in {c.split()[0] for c in ids},
            90,
            "the leftover to be removed",
            log,
        )
        wait_for(lambda: containers(dag_id, running_only=True), 90, "the new try's container", log)
        second.send_signal(signal.SIGTERM)
        wait_for(lambda: not containers(dag_id), 15, "the container to be removed", log)
        second.wait(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(timeout=10)
    assert "left by an earlier try" in log.read_text()
