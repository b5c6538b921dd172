"""A task blueprint's stop-condition through the real scheduler: the execution that meets it stops,
and the siblings still waiting for their turn (`maximum-queued-executions: 1`, which `dag.test()`
does not enforce) are skipped."""

from __future__ import annotations

import json
import urllib.parse

from tests.e2e.conftest import AirflowServer

# prints {"score": n} (`\173` is `{`, which command interpolation would read), then waits when n >= 2
COMMAND = (
    r"printf '\173" + '"score": %s}' + r"\n' {parameter-value:n}; [ {parameter-value:n} -lt 2 ] || sleep 120"
)
SWEEP = f"""\
- step:
    name: train
    image: valohai-airflow/busybox:1
    command: {json.dumps(COMMAND)}
    parameters:
      - {{name: n, type: integer}}
- task:
    name: sweep
    step: train
    maximum-queued-executions: 1
    stop-condition: score >= 2
    parameters:
      - {{name: n, style: multiple, rules: {{items: [1, 2, 3]}}}}
- pipeline:
    name: sweep
    nodes:
      - {{name: work, type: task, task: sweep}}
    edges: []
"""


def test_the_execution_that_meets_it_stops_and_the_waiting_ones_are_skipped(
    airflow_server: AirflowServer,
) -> None:
    project = airflow_server.dags_folder / "stopping"
    project.mkdir()
    (project / "valohai.yaml").write_text(SWEEP)
    dag_id = "stopping__sweep"
    airflow_server.wait_for_dag(dag_id)
    run_id = airflow_server.trigger(dag_id, {})
    run = airflow_server.wait_for_run(dag_id, run_id)
    quoted = urllib.parse.quote(run_id, safe="")
    found = airflow_server.get(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/work/listMapped", limit=100)
    executions = sorted(found["task_instances"], key=lambda ti: ti["map_index"])
    assert [(ti["map_index"], ti["state"]) for ti in executions] == [
        (0, "success"),
        (1, "success"),
        (2, "skipped"),
    ], airflow_server.failures(dag_id, run_id)
    assert run["state"] == "success"
    assert airflow_server.containers_of_our_runs() == []
