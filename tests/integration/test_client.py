"""The Python client against Airflow's real API app (in process, through the client's `http`
argument), over a run made with dag.test() in real containers: a run with more task instances than
the API server's page limit is listed whole."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pipelines import run_pipeline, step
from tests.integration.test_node_pages import client, token
from valohai_airflow.client import AirflowClient, ClientSettings

__all__ = ["client", "token"]  # the node pages' fixtures: Airflow's API app with the provider's plugin

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

YAML = (
    step(
        "fit",
        "echo fitted {parameter-value:rate} > /valohai/outputs/fit-{parameter-value:rate}.txt",
        "parameters:\n  - {name: rate, type: float, default: 0.1}",
    )
    + step("collect", "cat /valohai/inputs/fits/*", "inputs:\n  - {name: fits}")
    + textwrap.dedent(
        """\
    - task:
        name: rates
        step: fit
        parameters:
          - {name: rate, style: multiple, rules: {items: [0.1, 0.2, 0.3]}}
    - pipeline:
        name: p
        nodes:
          - {name: sweep, type: task, task: rates}
          - {name: last, type: execution, step: collect}
        edges:
          - [sweep.output.*, last.input.fits]
    """
    )
)


def test_a_run_longer_than_one_api_page_is_listed_whole(
    dags_folder: Path,
    client: Any,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome = run_pipeline(dags_folder, "paged", YAML)
    assert outcome.state == "success", outcome.states
    monkeypatch.setenv("AIRFLOW__API__MAXIMUM_PAGE_LIMIT", "2")  # read by the API at each request
    api = AirflowClient(ClientSettings(url="http://127.0.0.1", token=token), http=client)
    nodes = api.nodes(outcome.run.dag_id, outcome.run.run_id)
    assert sorted((n.task_id, n.map_index) for n in nodes) == [
        ("last", -1),
        ("sweep", 0),
        ("sweep", 1),
        ("sweep", 2),
        ("sweep__variants", -1),
    ]
    manifests = api.manifests(outcome.run.dag_id, outcome.run.run_id)
    assert sorted(m.parameters["rate"] for m in manifests if m.node == "sweep") == [0.1, 0.2, 0.3]
    assert [m.node for m in manifests if m.node == "last"] == ["last"]
