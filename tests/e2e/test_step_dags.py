"""A step of a project without pipelines, run from Airflow's REST API with a run conf (issue 25), in
the real Airflow of tests/e2e/conftest.py: the DAG processor finds the project, the API refuses a
wrong-typed value with a 400 naming the parameter (and makes no run), and a good trigger runs the
step in a real container that leaves outputs and metadata where a pipeline node's go."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.e2e.conftest import AirflowServer
from valohai_airflow.runtime.ids import ExecutionKey

COMMANDS = [
    'echo "{parameter-value:greeting} x{parameter-value:times}" > /valohai/outputs/greeting.txt',
    r"""printf '\173"times": %s}\n' {parameter-value:times}""",  # \173 is "{"
]
SOLO = f"""\
- step:
    name: greet
    image: valohai-airflow/busybox:1
    command: {json.dumps(COMMANDS)}
    parameters:
      - {{name: greeting, type: string, default: hi}}
      - {{name: times, type: integer, default: 1, min: 1, max: 9}}
"""
DAG_ID = "solo__step__greet"


def test_a_step_of_a_project_without_pipelines_runs_from_the_rest_api(airflow_server: AirflowServer) -> None:
    server = airflow_server
    project = server.dags_folder / "solo"
    project.mkdir()
    (project / "valohai.yaml").write_text(SOLO)
    dag = server.wait_for_dag(DAG_ID)
    assert dag["dag_display_name"] == "greet"
    assert {t["name"] for t in dag["tags"]} == {"valohai", "valohai-step", "solo"}
    server.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()

    refused = server.api(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"greet.parameter.times": "many"}},
    )
    assert refused.status_code == 400, refused.text
    assert "greet.parameter.times" in refused.text, refused.text
    assert server.get(f"/dags/{DAG_ID}/dagRuns")["total_entries"] == 0

    run_id = server.trigger(DAG_ID, {"greet.parameter.greeting": "moi", "greet.parameter.times": 3})
    run = server.wait_for_run(DAG_ID, run_id)
    assert run["state"] == "success", server.failures(DAG_ID, run_id)
    manifest = server.xcom(DAG_ID, run_id, "greet")
    assert manifest["parameters"] == {"greeting": "moi", "times": 3}
    assert manifest["metadata"] == {"times": 3}
    (output,) = manifest["outputs"]
    prefix = server.store / ExecutionKey(DAG_ID, run_id, "greet").prefix  # map index -1, try 1
    path = Path(output["uri"].removeprefix("file://"))
    assert path == prefix / "outputs" / "greeting.txt"
    assert path.read_text() == "moi x3\n"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == output["sha256"]
    (series,) = (prefix / "metadata.jsonl").read_text().splitlines()
    assert json.loads(series)["times"] == 3
