"""Running a valohai.yaml for real in tests: `dag.test()` on the loader's DagBag, bounded in time,
recording every task try's outcome (its state and error) for the tests that check what a run did.

`dag.test()` logs each try's failure and throws it away, so Airflow's in-process supervisor
`run_task_in_process` is wrapped for the run to keep its `TaskRunResult` (the task itself runs
unchanged).
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, add_project, dag_bag, pipeline_dag

STORE = AIRFLOW_HOME / "valohai" / "store"
WATCHDOG_SECONDS = 180


@dataclass
class Try:
    task_id: str
    try_number: int
    state: str
    error: BaseException | None


@dataclass
class Outcome:
    run: Any
    seconds: float
    tries: list[Try] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.run.state)

    @property
    def states(self) -> dict[str, str]:
        return {ti.task_id: str(ti.state) for ti in self.run.get_task_instances()}

    def errors(self, task_id: str) -> list[str]:
        return [str(t.error) for t in self.tries if t.task_id == task_id and t.error is not None]

    def executions(self, task_id: str) -> list[Any]:
        """A task node's mapped task instances, by map index."""
        return sorted(
            (t for t in self.run.get_task_instances() if t.task_id == task_id and t.map_index >= 0),
            key=lambda t: t.map_index,
        )

    def ti(self, task_id: str) -> Any:
        return next(t for t in self.run.get_task_instances() if t.task_id == task_id)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.ti(task_id).xcom_pull(task_ids=task_id, key=key)


def _fail_run_after(seconds: float, dag_id: str, done: threading.Event) -> None:
    """Bounded wait: mark the run failed in the DB so `dag.test()`'s loop ends."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    if done.wait(seconds):
        return
    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.state == DagRunState.RUNNING):
            run.state = DagRunState.FAILED


@contextmanager
def _recording(tries: list[Try], after_try: Callable[[Try], None] | None) -> Iterator[None]:
    from airflow.sdk.execution_time import supervisor

    original = supervisor.run_task_in_process

    def recording(ti: Any, task: Any, client: Any = None) -> Any:
        result = original(ti=ti, task=task, client=client)
        tries.append(Try(ti.task_id, ti.try_number, str(result.state), result.error))
        if after_try is not None:
            after_try(tries[-1])
        return result

    supervisor.run_task_in_process = recording
    try:
        yield
    finally:
        supervisor.run_task_in_process = original


def run_pipeline(
    dags_folder: Path,
    name: str,
    valohai_yaml: str,
    *,
    sidecar: str | None = None,
    conf: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    retries: int | None = None,
    mark_success_pattern: str | None = None,
    helper: Callable[[str], None] | None = None,
    after_try: Callable[[Try], None] | None = None,
) -> Outcome:
    """`files`: more files of the project folder (relative path → text); `retries`: set on every
    task, with no delay (None: the DAG's own); `helper`: run in a thread beside the run, given the DAG id; `after_try`:
    called after each try with its outcome."""
    files = {**(files or {}), **({"valohai-airflow.yaml": textwrap.dedent(sidecar)} if sidecar else {})}
    add_project(dags_folder, name, textwrap.dedent(valohai_yaml), files)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, name)
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
            task.retry_delay = timedelta(0)
    done = threading.Event()
    threads = [
        threading.Thread(target=_fail_run_after, args=(WATCHDOG_SECONDS, dag.dag_id, done), daemon=True)
    ]
    if helper:
        threads.append(threading.Thread(target=helper, args=(dag.dag_id,), daemon=True))
    for thread in threads:
        thread.start()
    tries: list[Try] = []
    started = time.monotonic()
    try:
        with _recording(tries, after_try):
            run = dag.test(run_conf=conf, mark_success_pattern=mark_success_pattern)
    finally:
        done.set()
    return Outcome(run, time.monotonic() - started, tries)


def step(name: str, command: str, extra: str = "", *, image: str = BUSYBOX) -> str:
    """One `- step:` of `image` running `command`; `extra`: more keys of it (YAML, any indent)."""
    body = textwrap.indent(textwrap.dedent(extra).strip("\n"), " " * 4) if extra else ""
    return f"- step:\n    name: {name}\n    image: {image}\n    command: {json.dumps(command)}\n" + (
        body + "\n" if body else ""
    )


def one_node(step: str) -> str:
    """`step` (named `s`) as the one node `only` of pipeline `p`."""
    return step + textwrap.dedent(
        """\
        - pipeline:
            name: p
            nodes:
              - name: only
                type: execution
                step: s
            edges: []
        """
    )
