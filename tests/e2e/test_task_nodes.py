"""Task nodes through the real scheduler: mapped executions named by their values in the UI, and
a stop-all failure that skips the siblings still waiting for their turn
(`maximum-queued-executions: 1` is Airflow's `max_active_tis_per_dagrun`, which the scheduler
enforces; `dag.test()` does not, so this can only be seen here)."""

from __future__ import annotations

import urllib.parse
from typing import Any

from tests.e2e.conftest import AirflowServer

SWEEP = """\
- step:
    name: maybe
    image: valohai-airflow/busybox:1
    command: echo id={parameter-value:id} lr={parameter-value:lr}; sleep %(sleep)s; test {parameter-value:id} != %(fail)s
    parameters:
      - {name: id, type: integer}
      - {name: lr, type: float, default: 0.5}
- task:
    name: sweep
    step: maybe
    maximum-queued-executions: %(queued)s
    parameters:
      - {name: id, style: multiple, rules: {items: [1, 2, 3]}}
- pipeline:
    name: sweep
    parameters:
      - {name: rates, targets: [work.parameter.lr], default: [0.5]}
    nodes:
      - {name: work, type: task, task: sweep}
    edges: []
"""


def _executions(server: AirflowServer, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    run = urllib.parse.quote(run_id, safe="")
    found = server.get(f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/listMapped", limit=100)
    return sorted(found["task_instances"], key=lambda ti: ti["map_index"])


def _run(
    server: AirflowServer, name: str, conf: dict[str, Any], *, fail: int = 0, queued: int = 1, sleep: int = 0
) -> tuple[str, str]:
    project = server.dags_folder / name
    project.mkdir()
    (project / "valohai.yaml").write_text(SWEEP % {"fail": fail, "queued": queued, "sleep": sleep})
    dag_id = f"{name}__sweep"
    server.wait_for_dag(dag_id)
    run_id = server.trigger(dag_id, conf)
    server.wait_for_run(dag_id, run_id)
    return dag_id, run_id


def test_executions_run_side_by_side_and_are_labelled_with_their_values(
    airflow_server: AirflowServer,
) -> None:
    """Four at a time (the e2e Airflow's parallelism), each for 2 s: one execution's start must not
    remove a sibling's running container (they share dag, run and node; not the map index)."""
    dag_id, run_id = _run(airflow_server, "sweeping", {"rates": [0.1, 0.2]}, queued=6, sleep=2)
    executions = _executions(airflow_server, dag_id, run_id, "work")
    assert [ti["state"] for ti in executions] == ["success"] * 6, airflow_server.failures(dag_id, run_id)
    starts = sorted(ti["start_date"] for ti in executions)
    ends = sorted(ti["end_date"] for ti in executions)
    assert starts[1] < ends[0], (starts, ends)  # at least two ran at the same time
    assert [ti["rendered_map_index"] for ti in executions] == [
        f"id={i}, lr={lr}" for i in (1, 2, 3) for lr in (0.1, 0.2)
    ]
    assert airflow_server.xcom(dag_id, run_id, "work__variants")[1] == {"id": 1, "lr": 0.2}
    assert airflow_server.containers_of_our_runs() == []


def test_stop_all_skips_the_siblings_that_have_not_started(airflow_server: AirflowServer) -> None:
    dag_id, run_id = _run(airflow_server, "failing", {}, fail=1)
    run = airflow_server.get(f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
    executions = _executions(airflow_server, dag_id, run_id, "work")
    assert run["state"] == "failed"
    assert [(ti["map_index"], ti["state"]) for ti in executions] == [
        (0, "failed"),
        (1, "skipped"),
        (2, "skipped"),
    ]
    assert airflow_server.containers_of_our_runs() == []
