"""Running a valohai.yaml for real in tests: `dag.test()` on the loader's DagBag, bounded in time."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.conftest import BUSYBOX, add_project, dag_bag, pipeline_dag

WATCHDOG_SECONDS = 180


@dataclass
class Outcome:
    run: Any
    seconds: float

    @property
    def state(self) -> str:
        return str(self.run.state)

    @property
    def states(self) -> dict[str, str]:
        return {ti.task_id: str(ti.state) for ti in self.run.get_task_instances()}

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


def run_pipeline(
    dags_folder: Path,
    name: str,
    valohai_yaml: str,
    *,
    sidecar: str | None = None,
    conf: dict[str, Any] | None = None,
    helper: Callable[[str], None] | None = None,
    files: dict[str, str] | None = None,
) -> Outcome:
    """`files`: more files of the project folder (relative path → text)."""
    files = {**(files or {}), **({"valohai-airflow.yaml": textwrap.dedent(sidecar)} if sidecar else {})}
    add_project(dags_folder, name, textwrap.dedent(valohai_yaml), files)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, name)
    done = threading.Event()
    threads = [
        threading.Thread(target=_fail_run_after, args=(WATCHDOG_SECONDS, dag.dag_id, done), daemon=True)
    ]
    if helper:
        threads.append(threading.Thread(target=helper, args=(dag.dag_id,), daemon=True))
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        run = dag.test(run_conf=conf)
    finally:
        done.set()
    return Outcome(run, time.monotonic() - started)


def step(name: str, command: str, parameters: str = "") -> str:
    text = f"- step:\n    name: {name}\n    image: {BUSYBOX}\n    command: {json.dumps(command)}\n"
    return text + (
        textwrap.indent(textwrap.dedent(parameters).strip("\n"), "    ") + "\n" if parameters else ""
    )
