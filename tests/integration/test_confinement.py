"""Path confinement through real Airflow (`dag.test()`) and real containers.

An input `filename` that leaves the inputs folder makes the project an error DAG; a run conf naming
a worker file outside the allowed folders fails the task before any container starts; a run conf
naming a file inside a `[valohai] input_roots` folder, renamed by a `filename` below the input's
folder, reaches the container.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.conftest import add_project, dag_bag
from tests.integration.pipelines import one_node, run_pipeline, step
from tests.integration.test_faults import containers_created_since

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

ESCAPING = textwrap.dedent(
    """\
    - step:
        name: s
        image: busybox
        command: ls
        inputs:
          - name: data
            default: data.csv
            filename: ../../../../anywhere/x
    - pipeline:
        name: p
        nodes:
          - {name: only, type: execution, step: s}
        edges: []
    """
)

COPY = step(
    "s",
    "cat /valohai/inputs/data/sub/renamed.csv > /valohai/outputs/copy.csv",
    extra="inputs:\n  - name: data\n    filename: sub/renamed.csv",
)


def test_an_escaping_filename_makes_the_project_an_error_dag(dags_folder: Path) -> None:
    add_project(dags_folder, "flt-escape", ESCAPING)
    bag = dag_bag(dags_folder)
    assert bag.import_errors == {}
    error_dag = bag.dags["valohai_error__flt-escape"]
    assert "flt-escape/valohai.yaml:8:19: error: step 's', input 'data': 'filename'" in error_dag.description
    assert not any(dag_id.startswith("flt-escape__") for dag_id in bag.dags)


def test_a_run_conf_path_outside_the_allowed_folders_fails_before_the_container(dags_folder: Path) -> None:
    since = time.time()
    outcome = run_pipeline(
        dags_folder, "flt-shadow", one_node(COPY), conf={"only.input.data": ["/etc/passwd"]}
    )
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert (
        "node 'only': input 'data': local path '/etc/passwd' is outside the folders inputs may read"
        in message
    )
    assert containers_created_since(since) == []


def test_a_run_conf_path_inside_input_roots_reaches_the_container(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "big.csv").write_text("from the shared folder\n")
    monkeypatch.setenv("AIRFLOW__VALOHAI__INPUT_ROOTS", f"/nonexistent, {shared}")
    outcome = run_pipeline(
        dags_folder,
        "flt-roots",
        one_node(COPY),
        conf={"only.input.data": [str(shared / "big.csv")]},
    )
    assert outcome.states == {"only": "success"}, outcome.errors("only")
    manifest = outcome.xcom("only")
    assert [f["path"] for f in manifest["inputs"]["data"]] == ["sub/renamed.csv"]
    (output,) = manifest["outputs"]
    assert output["path"] == "copy.csv"
    assert Path(output["uri"].removeprefix("file://")).read_text() == "from the shared folder\n", json.dumps(
        output
    )


def test_a_bad_network_option_fails_the_task_naming_the_option(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__VALOHAI__INPUT_PRIVATE_NETWORKS", "127.0.0.0/8, localhost")
    since = time.time()
    outcome = run_pipeline(dags_folder, "flt-badopt", one_node(COPY), conf={"only.input.data": ["x"]})
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert "[valohai] input_private_networks: 'localhost' is not an IP network" in message, message
    assert containers_created_since(since) == []
