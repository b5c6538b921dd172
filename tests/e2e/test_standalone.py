"""End to end through real Airflow (what `airflow standalone` runs: scheduler, DAG processor, API
server, triggerer), LocalExecutor, real containers; everything observed through the REST API and
the store on disk.

The dags folder starts with only the loader file (tests/e2e/conftest.py). The example project is
copied in while Airflow runs, its pipeline triggered with a run conf and waited for; a broken
valohai.yaml becomes an error DAG naming file and line while the example stays; edits to a
valohai.yaml reach the DAG on the DAG processor's next re-parse; a 1,000-node pipeline reaches the
API with its whole trigger form.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.conftest import PARSE_TIMEOUT, AirflowServer, ExampleRun, wait_for
from tests.support.synthetic import synthetic_yaml

HELLO = """\
- step:
    name: hello
    image: valohai-airflow/busybox:1
    command: echo {parameters}
    parameters:
      - name: greeting
        type: string
        default: hi
- pipeline:
    name: greet
    nodes:
      - name: say
        type: execution
        step: %(step)s
    edges: []
"""


def _local_path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def _check_outputs_in_store(server: AirflowServer, manifest: dict[str, Any]) -> None:
    for output in manifest["outputs"]:
        path = _local_path(output["uri"])
        assert path.is_relative_to(server.store), (path, server.store)
        data = path.read_bytes()
        assert len(data) == output["size"]
        assert hashlib.sha256(data).hexdigest() == output["sha256"]


def test_example_pipeline_runs_from_the_rest_api(
    airflow_server: AirflowServer, example_run: ExampleRun
) -> None:
    server, dag_id, run_id = airflow_server, example_run.dag_id, example_run.run_id
    states = server.task_states(dag_id, run_id)
    assert example_run.state == "success", states
    assert states == {
        "preprocess": "success",
        "train-slow": "success",
        "train-medium": "success",
        "train-fast": "success",
        "evaluate-slow": "success",
        "evaluate-medium": "success",
        "evaluate-fast": "success",
        "pick-best": "success",
    }

    preprocess = server.xcom(dag_id, run_id, "preprocess")
    assert preprocess["parameters"]["test_fraction"] == 0.3  # from the run conf
    assert {f["path"] for f in preprocess["outputs"]} == {"train.npz", "test.npz"}
    assert preprocess["metadata"]["features"] == 2

    fast = server.xcom(dag_id, run_id, "train-fast")
    assert fast["parameters"] == {
        "learning_rate": 1.0,
        "epochs": 7,
        "features": 2,
    }  # run conf + metadata edge
    slow = server.xcom(dag_id, run_id, "train-slow")
    assert slow["parameters"] == {"learning_rate": 0.01, "epochs": 50, "features": 2}  # untouched defaults
    assert [f["path"] for f in fast["inputs"]["dataset"]] == ["train.npz"]

    best = server.xcom(dag_id, run_id, "pick-best")
    assert sorted(f["path"] for f in best["inputs"]["models"]) == [
        "model-lr0.01.npz",
        "model-lr0.1.npz",
        "model-lr1.0.npz",
    ]
    assert [f["path"] for f in best["outputs"]] == ["best-model.npz"]
    assert 0.0 < best["metadata"]["best_accuracy"] <= 1.0

    for manifest in (preprocess, fast, slow, best):
        _check_outputs_in_store(server, manifest)

    # valohai-airflow.yaml's weekly trigger is the DAG's schedule: unpausing it ran the latest
    # Monday 09:00 UTC once (Airflow's catchup=False), through the real scheduler
    scheduled = [r for r in server.runs() if r["dag_id"] == dag_id and r["run_type"] == "scheduled"]
    assert len(scheduled) == 1, scheduled
    assert scheduled[0]["state"] == "success"
    assert re.search(r"T09:00:00(\.0+)?(Z|\+00:00)$", scheduled[0]["logical_date"]), scheduled[0]
    logical = datetime.fromisoformat(scheduled[0]["logical_date"].replace("Z", "+00:00"))
    assert logical.weekday() == 0
    assert server.get("/importErrors")["total_entries"] == 0
    assert {host for host, _ in server.listening()} == {"127.0.0.1"}, server.listening()


def test_broken_project_shows_file_and_line_while_others_stay(
    airflow_server: AirflowServer, example_project: Path
) -> None:
    server = airflow_server
    project = server.dags_folder / "broken"
    project.mkdir()
    (project / "valohai.yaml").write_text(HELLO % {"step": "helo"})

    error_dag = server.wait_for_dag("valohai_error__broken")
    assert error_dag["description"].startswith("broken/valohai.yaml:12:9: error:"), error_dag["description"]
    assert 'step "helo" does not exist' in error_dag["description"]
    assert error_dag["dag_display_name"] == "⚠ broken: valohai.yaml has 1 error(s)"
    details = server.get("/dags/valohai_error__broken/details")
    assert f"{project / 'valohai.yaml'}:12:9" in details["doc_md"]

    dags = server.dags()
    assert "example__three-trainings" in dags  # the other project's DAG stays
    assert server.get("/importErrors")["total_entries"] == 0  # the loader file itself imports fine


def test_edits_reach_the_dag_on_the_next_parse(airflow_server: AirflowServer, example_project: Path) -> None:
    server = airflow_server
    project = server.dags_folder / "edited"
    project.mkdir()
    valohai_yaml = project / "valohai.yaml"
    valohai_yaml.write_text(HELLO % {"step": "helo"})
    server.wait_for_dag("valohai_error__edited")

    started = time.monotonic()
    valohai_yaml.write_text(HELLO % {"step": "hello"})  # the fix
    server.wait_for_dag("edited__greet")
    wait_for(
        "the error DAG of the fixed project to go",
        lambda: "valohai_error__edited" not in server.dags(),
        PARSE_TIMEOUT,
        server,
    )
    print(f"fixed valohai.yaml reached the DAG list after {time.monotonic() - started:.0f} s")

    def tasks() -> list[str]:
        return sorted(t["task_id"] for t in server.get("/dags/edited__greet/tasks")["tasks"])

    assert tasks() == ["say"]
    started = time.monotonic()
    edited = (
        (HELLO % {"step": "hello"}).replace("name: say", "name: shout").replace("default: hi", "default: HEY")
    )
    valohai_yaml.write_text(edited)
    wait_for("the renamed node to become the DAG's task", lambda: tasks() == ["shout"], PARSE_TIMEOUT, server)
    print(f"renamed node reached the DAG after {time.monotonic() - started:.0f} s")
    params = server.get("/dags/edited__greet/details")["params"]
    assert params["shout.parameter.greeting"]["value"] == "HEY", params
    assert "say.parameter.greeting" not in params


def test_a_1000_node_pipeline_reaches_the_api_with_its_whole_trigger_form(
    airflow_server: AirflowServer, example_project: Path
) -> None:
    """The DAG processor parses and serializes a 1,000-node pipeline; the API server's DAG details
    (what the trigger form is drawn from) hold every Param, and a trigger with a wrong value for a
    deep node's parameter is refused before a run exists."""
    server = airflow_server
    project = server.dags_folder / "big"
    project.mkdir()
    (project / "valohai.yaml").write_text(synthetic_yaml(1000, 4000))
    try:
        started = time.monotonic()
        server.wait_for_dag("big__synthetic")
        print(f"1,000-node pipeline listed by the API {time.monotonic() - started:.0f} s after the copy")
        params = server.get("/dags/big__synthetic/details")["params"]
        # one parameter and one input per node, and the three fields that reuse nodes of an earlier run
        assert len(params) == 2003, len(params)
        assert len(params["valohai.reuse.nodes"]["schema"]["items"]["enum"]) == 1000
        param = params["n777.parameter.size-7"]
        assert param["value"] == 7 and param["schema"]["type"] == "integer", param
        assert param["schema"]["section"] == "n777" and param["schema"]["minimum"] == 0, param
        assert len(server.get("/dags/big__synthetic/tasks")["tasks"]) == 1000
        response = server.api(
            "POST",
            "/dags/big__synthetic/dagRuns",
            json={"logical_date": None, "conf": {"n999.parameter.size-9": "many"}},
        )
        assert response.status_code == 400, response.text
        assert "n999.parameter.size-9" in response.text, response.text
        assert not server.get("/dags/big__synthetic/dagRuns")["dag_runs"]
    finally:
        shutil.rmtree(project)
