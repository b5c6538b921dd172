"""A pipeline run with `dag.test()` that records every task try's outcome, for the integration tests
that check what a run did (its states, errors and XComs).

`dag.test()` logs each try's failure and throws it away, so Airflow's in-process supervisor
`run_task_in_process` is wrapped to keep its `TaskRunResult` (the task itself runs unchanged).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX, add_project, dag_bag, pipeline_dag

STORE = AIRFLOW_HOME / "valohai" / "store"


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
    def states(self) -> dict[str, str]:
        return {ti.task_id: ti.state for ti in self.run.get_task_instances()}

    def errors(self, task_id: str) -> list[str]:
        return [str(t.error) for t in self.tries if t.task_id == task_id and t.error is not None]

    def xcom(self, task_id: str) -> Any:
        ti = next(t for t in self.run.get_task_instances() if t.task_id == task_id)
        return ti.xcom_pull(task_ids=task_id)


def run_pipeline(
    dags_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    valohai_yaml: str,
    *,
    conf: dict[str, Any] | None = None,
    retries: int = 0,
    mark_success_pattern: str | None = None,
    files: dict[str, str] | None = None,
    after_try: Callable[[Try], None] | None = None,
) -> Outcome:
    from airflow.sdk.execution_time import supervisor

    add_project(dags_folder, name, textwrap.dedent(valohai_yaml), files)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    dag = pipeline_dag(bag, name)
    for task in dag.tasks:
        task.retries = retries
        task.retry_delay = timedelta(0)
    tries: list[Try] = []
    original = supervisor.run_task_in_process

    def recording(ti: Any, task: Any, client: Any = None) -> Any:
        result = original(ti=ti, task=task, client=client)
        tries.append(Try(ti.task_id, ti.try_number, str(result.state), result.error))
        if after_try is not None:
            after_try(tries[-1])
        return result

    monkeypatch.setattr(supervisor, "run_task_in_process", recording)
    started = time.monotonic()
    run = dag.test(run_conf=conf, mark_success_pattern=mark_success_pattern)
    return Outcome(run, time.monotonic() - started, tries)


def step_yaml(name: str, command: str, *, image: str = BUSYBOX, extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(extra).strip("\n"), " " * 4) if extra else ""
    return f"- step:\n    name: {name}\n    image: {image}\n    command: {json.dumps(command)}\n" + (
        body + "\n" if body else ""
    )


def one_node(step: str) -> str:
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
