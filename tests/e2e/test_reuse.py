"""reuse-executions under the real scheduler (LocalExecutor of the package's `airflow_server`).

The sidecar's `max_active_tasks: 1` makes the executor run the three identical nodes one after
another, the order in which a node used to find its sibling's fresh index entry and reuse it;
whether a container ran is read from the Docker engine's event log.
"""

from __future__ import annotations

import itertools
import time

from tests.e2e.conftest import AirflowServer
from tests.support.containers import containers_created

DAG_ID = "reuse-three__three"
NODES = ["train1", "train2", "train3"]
VALOHAI_YAML = """\
- step:
    name: train
    image: valohai-airflow/busybox:1
    command: echo {parameter-value:seed} > /valohai/outputs/model.txt
    parameters:
      - {name: seed, type: integer, default: 7}
- pipeline:
    name: three
    reuse-executions: true
    nodes:
      - {name: train1, type: execution, step: train}
      - {name: train2, type: execution, step: train}
      - {name: train3, type: execution, step: train}
    edges: []
"""
SIDECAR = """\
pipelines:
  three:
    max_active_tasks: 1
"""


def _run(server: AirflowServer) -> tuple[str, list[str], dict[str, dict[str, object]]]:
    """One triggered run, waited for: its id, the containers the engine created, each node's XCom."""
    started = time.time()
    run_id = server.trigger(DAG_ID, {})
    run = server.wait_for_run(DAG_ID, run_id)
    assert run["state"] == "success", server.failures(DAG_ID, run_id)
    time.sleep(0.2)  # let the engine's event log catch up
    xcoms = {node: server.xcom(DAG_ID, run_id, node) for node in NODES}
    return run_id, containers_created(DAG_ID, run_id, started - 60), xcoms


def test_three_identical_nodes_are_three_executions_and_the_next_run_reuses(
    airflow_server: AirflowServer,
) -> None:
    server = airflow_server
    project = server.dags_folder / "reuse-three"
    project.mkdir()
    (project / "valohai-airflow.yaml").write_text(SIDECAR)
    (project / "valohai.yaml").write_text(VALOHAI_YAML)
    server.wait_for_dag(DAG_ID)

    first, containers, xcoms = _run(server)
    assert containers == NODES
    assert all(xcoms[node].get("reused_from") is None for node in NODES)
    starts = sorted((str(xcoms[n]["started_at"]), str(xcoms[n]["finished_at"])) for n in NODES)
    assert all(done <= start for (_, done), (start, _) in itertools.pairwise(starts))  # one by one

    _, containers, xcoms = _run(server)
    assert containers == []
    assert all(xcoms[node]["reused_from"]["run_id"] == first for node in NODES)  # type: ignore[index]
