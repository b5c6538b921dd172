"""The Executions page of a DAG on the real Airflow API app, over a task node's sweep run twice with
dag.test() in real containers: every execution across runs with its parameters, last metadata and
status, sorted and filtered by the query, the compare view charting the stored metadata series, the
run conf to copy, and Airflow's own auth (the UI's `_token` cookie; a user without a role is refused)."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import add_project, dag_bag, pipeline_dag
from tests.integration.pipelines import Try, one_node, run_pipeline, step
from tests.integration.test_node_pages import client, token  # noqa: F401  (shared fixtures)
from tests.support.executions_table import column, execution_rows

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

# three points per execution: loss 1, then lr, then lr/... as text the shell can print; a note to escape
TRAIN = step(
    "train",
    r"printf '\173" + '"epoch": 1, "loss": 1}' + r"\n'; "
    r"printf '\173" + '"epoch": 2, "loss": %s}' + r"\n' {parameter-value:lr}; "
    r"printf '\173" + '"epoch": 3, "loss": %s, "note": "<b>%s</b>"}' + r"\n' {parameter-value:lr} "
    r"{parameter-value:epochs}",
    """
    parameters:
      - {name: epochs, type: integer, default: 4}
      - {name: lr, type: float, default: 0.5}
    """,
)
YAML = TRAIN + textwrap.dedent(
    """\
    - task:
        name: rates
        step: train
        parameters:
          - {name: lr, style: multiple, rules: {items: [0.3, 0.05, 0.7]}}
    - pipeline:
        name: sweep
        nodes:
          - {name: train, type: task, task: rates}
        edges: []
    """
)


def test_the_sweeps_executions_across_runs_sorted_filtered_and_compared(
    dags_folder: Path,
    client: Any,  # noqa: F811
    token: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    add_project(dags_folder, "views", YAML)
    dag = pipeline_dag(dag_bag(dags_folder), "views")
    first, second = dag.test(), dag.test(run_conf={"train.parameter.epochs": 9})
    assert (str(first.state), str(second.state)) == ("success", "success")
    page = f"/valohai/executions/{dag.dag_id}"

    assert client.get(page).status_code == 401
    nobody = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    refused = client.get(page, headers={"Authorization": f"Bearer {nobody}"})
    assert refused.status_code == 403, refused.text
    assert client.get(page + "/compare?e=x", headers={"Authorization": f"Bearer {nobody}"}).status_code == 403

    client.cookies.set("_token", token)
    try:
        answer = client.get(page)
        assert answer.status_code == 200, answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"]  # no script needed
        html = answer.text
        assert (
            len(execution_rows(html)) == 6
        )  # both runs, three mapped executions each; not the variants task
        assert sorted(column(html, "run")) == sorted([first.run_id, second.run_id] * 3)
        assert sorted(column(html, "execution")) == sorted(["lr=0.3", "lr=0.05", "lr=0.7"] * 2)
        assert set(column(html, "status")) == {"completed"}
        assert sorted(column(html, "parameter.epochs")) == ["4", "4", "4", "9", "9", "9"]
        assert "&lt;b&gt;9&lt;/b&gt;" in html and "<b>9</b>" not in html  # user values escaped

        by_loss = client.get(page, params={"sort": "metadata.loss"}).text
        assert column(by_loss, "metadata.loss") == ["0.05", "0.05", "0.3", "0.3", "0.7", "0.7"]
        descending = client.get(page, params={"sort": "metadata.loss", "desc": "true"}).text
        assert column(descending, "metadata.loss") == ["0.7", "0.7", "0.3", "0.3", "0.05", "0.05"]
        low = client.get(page, params={"f.metadata.loss": "<0.5", "f.parameter.epochs": "=9"}).text
        assert sorted(column(low, "execution")) == ["lr=0.05", "lr=0.3"]
        assert column(client.get(page, params={"task": "train__variants"}).text, "run") == []

        # paged by run, newest first: one run per page here
        monkeypatch.setattr("valohai_airflow.airflow.executions_page.RUNS_PER_PAGE", 1)
        newest = client.get(page).text
        assert set(column(newest, "run")) == {second.run_id} and "older runs" in newest
        assert set(column(client.get(page, params={"page": 1}).text, "run")) == {first.run_id}
        monkeypatch.undo()

        tokens = re.findall(r'name="e" value="([^"]*)"', by_loss)
        chosen = [json.loads(t.replace("&#34;", '"')) for t in tokens[:2]]  # the two lowest losses
        compare = client.get(page + "/compare", params={"e": [json.dumps(c) for c in chosen]})
        assert compare.status_code == 200, compare.text
        text = compare.text
        charts = dict(re.findall(r'<figure class="chart" data-key="([^"]*)">(.*?)</figure>', text, re.S))
        assert set(charts) == {"epoch", "loss"}  # numeric keys; the text note has no chart
        lines = re.findall(r'points="([^"]*)"', charts["loss"])
        assert len(lines) == 2 and all(len(line.split()) == 3 for line in lines)  # each stored series
        confs = [
            json.loads(c.replace("&#34;", '"'))
            for c in re.findall(r'<pre class="conf">(.*?)</pre>', text, re.S)
        ]
        assert sorted(c["train.parameter.epochs"] for c in confs) == [4, 9]
        assert all(set(c) == {"train.parameter.epochs"} for c in confs)  # the blueprint's lr is no form field

        for bad in ({"e": "not json"}, {"e": [json.dumps(chosen[0])] * 9}, {}):
            assert client.get(page + "/compare", params=bad).status_code == 400, bad
    finally:
        client.cookies.clear()


def test_every_try_of_a_retried_node_is_a_row_with_its_own_metadata(
    dags_folder: Path,
    client: Any,  # noqa: F811
    token: str,  # noqa: F811
) -> None:
    """A retried node's first try (failed, its manifest only in the store) and its second (the
    XCom) are two executions, as on Valohai where a retry is a new execution."""
    command = (
        "if test -f /valohai/repository/second; then echo '{\"loss\": 0.25}'; "
        "else echo '{\"loss\": 9}'; exit 1; fi"
    )

    def mark_second(attempt: Try) -> None:  # the next try's /valohai/repository has the file
        (dags_folder / "retried" / "second").write_text("")

    outcome = run_pipeline(
        dags_folder,
        "retried",
        one_node(step("s", command)),
        retries=1,
        after_try=mark_second,
    )
    assert outcome.states == {"only": "success"}, outcome.errors("only")
    client.cookies.set("_token", token)
    try:
        html = client.get(f"/valohai/executions/{outcome.run.dag_id}").text
    finally:
        client.cookies.clear()
    assert len(execution_rows(html)) == 2, html[-3000:]
    assert column(html, "status") == ["failed", "completed"]
    assert column(html, "metadata.loss") == ["9", "0.25"]
