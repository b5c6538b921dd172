"""A project in an Airflow 3 Git DAG bundle (apache-airflow-providers-git), beside the dags folder
of the same Airflow: the DAG processor builds its DAG from the bundle's checkout, and a run keeps
the code of the bundle version it was created at, also when the branch has moved on before the run
starts (the worker checks that version out and parses the loader file there)."""

from __future__ import annotations

import urllib.parse

from tests.e2e.conftest import PARSE_TIMEOUT, AirflowServer, wait_for
from tests.e2e.git_bundle import BUNDLE_NAME

DAG_ID = "bundled__greet"
PROJECT = """\
- step:
    name: hello
    image: valohai-airflow/busybox:1
    command: echo {word}
- pipeline:
    name: greet
    nodes:
      - name: say
        type: execution
        step: hello
    edges: []
"""
FIRST, SECOND = "code-of-version-one", "code-of-version-two"


def _at_version(server: AirflowServer, sha: str) -> dict[str, object]:
    """The DAG's details once the DAG processor has parsed it at bundle version `sha`."""

    def parsed() -> dict[str, object] | None:
        dags = server.dags()
        if DAG_ID not in dags:
            return None
        details = server.get(f"/dags/{DAG_ID}/details")
        return details if details.get("bundle_version") == sha else None

    return wait_for(f"{DAG_ID} parsed at bundle version {sha[:8]}", parsed, PARSE_TIMEOUT, server)


def _log(server: AirflowServer, run_id: str) -> str:
    run = urllib.parse.quote(run_id, safe="")
    response = server.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run}/taskInstances/say/logs/1", params={"full_content": True}
    )
    assert response.status_code == 200, response.text
    return response.text


def test_a_run_keeps_the_code_of_the_bundle_version_it_started_with(airflow_server: AirflowServer) -> None:
    server, origin = airflow_server, airflow_server.git_origin
    assert origin is not None
    first = origin.commit({"bundled/valohai.yaml": PROJECT.format(word=FIRST)}, "prints version one")
    details = _at_version(server, first)
    assert details["bundle_name"] == BUNDLE_NAME
    assert str(details["fileloc"]).endswith("/valohai_dags.py")

    # created while the DAG is paused, so it waits for the scheduler until after the branch moved
    server.run_ids.append(run_id := "bundle-at-version-one")
    response = server.api(
        "POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": {}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["bundle_version"] == first

    second = origin.commit({"bundled/valohai.yaml": PROJECT.format(word=SECOND)}, "prints version two")
    _at_version(server, second)
    server.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
    run = server.wait_for_run(DAG_ID, run_id)
    assert run["state"] == "success", server.failures(DAG_ID, run_id)
    assert run["bundle_version"] == first
    log = _log(server, run_id)
    assert FIRST in log and SECOND not in log, log[-3000:]

    later = server.trigger(DAG_ID, {})  # a new run starts at the version the DAG now has
    run = server.wait_for_run(DAG_ID, later)
    assert run["state"] == "success", server.failures(DAG_ID, later)
    assert run["bundle_version"] == second
    log = _log(server, later)
    assert SECOND in log and FIRST not in log, log[-3000:]
    server.wait_until_idle()
