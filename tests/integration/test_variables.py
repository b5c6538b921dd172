"""Run-time environment variables and secrets (valohai-airflow.yaml `variables:`), for real: an Airflow
Variable set through `Variable.set` and an Airflow Connection added to the metadata DB (Airflow's own
API; the task reads them through the Task SDK and the secrets backends), a real container that
prints them, and then a scan of what the run left for the secrets' values: the XCom rows, the task's
doc_md and rendered template fields, the Outputs page and every file of the store. (`dag.test()` writes no task log
file and its console logging has no masker: the masked task log is tests/e2e/test_variables.py's.)
Bad sources (a missing Variable, a missing Connection, an empty Connection field) fail the node
before any container starts, proved by the Docker engine's own event log.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AIRFLOW_HOME
from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import Outcome, one_node, run_pipeline, step
from tests.integration.test_node_pages import client, token  # noqa: F401  (fixtures: the Outputs page)
from tests.support.containers import containers_created

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

STORE = AIRFLOW_HOME / "valohai" / "store"
TOKEN = f"tok-{uuid.uuid4().hex}"  # the Airflow Variable's value
PASSWORD = f"pw-{uuid.uuid4().hex}"  # the Connection's password
VARIABLE_KEY = "vh_test_handle"
CONN_ID = "vh_test_warehouse"

# The secrets printed plainly (a task log must mask them) and as metadata (the store and XCom must
# not get them); their sha256 and the other variables written to an output: proof the container got
# the right values.
COMMAND = (
    'echo "token=$API_TOKEN"; echo "pw=$DB_PASSWORD"; echo "uri=$DB_URI"; '
    'echo "{\\"leak\\": \\"$API_TOKEN\\"}"; '
    'printf %s "$API_TOKEN" | sha256sum > /valohai/outputs/seen.txt; '
    'printf %s "$DB_PASSWORD" | sha256sum >> /valohai/outputs/seen.txt; '
    'echo "login=$DB_LOGIN region=$REGION mode=$MODE default=$FROM_YAML" >> /valohai/outputs/seen.txt'
)
PRINTING = step(
    "s",
    COMMAND,
    extra="""\
    environment-variables:
      - {name: FROM_YAML, default: yaml-default}
      - {name: MODE, default: fast}
    """,
)
SIDECAR = f"""\
variables:
  API_TOKEN: {{variable: {VARIABLE_KEY}}}
steps:
  s:
    variables:
      DB_PASSWORD: {{connection: {CONN_ID}, field: password}}
pipelines:
  p:
    variables:
      DB_URI: {{connection: {CONN_ID}}}
    nodes:
      only:
        variables:
          DB_LOGIN: {{connection: {CONN_ID}, field: login, secret: false}}
          REGION: {{connection: {CONN_ID}, field: extra.region, secret: false}}
"""
URI = f"postgres://analyst:{PASSWORD}@db.example.com:5432/sales?region=eu-north"


@pytest.fixture
def airflow_secrets() -> Iterator[None]:
    """The Variable and the Connection, made with Airflow's own API in its metadata DB, removed after."""
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    Variable.set(VARIABLE_KEY, TOKEN)
    with create_session() as session:
        session.add(
            Connection(
                conn_id=CONN_ID,
                conn_type="postgres",
                host="db.example.com",
                login="analyst",
                password=PASSWORD,
                schema="sales",
                port=5432,
                extra=json.dumps({"region": "eu-north"}),
            )
        )
    yield
    Variable.delete(VARIABLE_KEY)
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == CONN_ID).delete()


def _run(dags_folder: Path, name: str, sidecar: str, **kwargs: Any) -> Outcome:
    return run_pipeline(
        dags_folder, name, one_node(PRINTING), files={"valohai-airflow.yaml": sidecar}, **kwargs
    )


def stored_files() -> list[tuple[Path, bytes]]:
    """Every file of the local store (all runs of the session: a leak anywhere is a leak)."""
    return [(p, p.read_bytes()) for p in STORE.rglob("*") if p.is_file()]


def test_secrets_reach_the_container_and_nothing_else(
    dags_folder: Path,
    airflow_secrets: None,
    client: Any,  # noqa: F811
    token: str,  # noqa: F811
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    outcome = _run(dags_folder, "vars-ok", SIDECAR, conf={"only.variable.MODE": "slow"})
    assert outcome.states == {"only": "success"}, outcome.tries
    manifest = outcome.xcom("only")
    # names only, for every variable (secret or not)
    assert manifest["variables"] == [
        "API_TOKEN",
        "DB_LOGIN",
        "DB_PASSWORD",
        "DB_URI",
        "FROM_YAML",
        "MODE",
        "REGION",
    ]
    (seen,) = [o for o in manifest["outputs"] if o["path"] == "seen.txt"]
    assert Path(seen["uri"].removeprefix("file://")).read_text().split("\n") == [
        f"{hashlib.sha256(TOKEN.encode()).hexdigest()}  -",
        f"{hashlib.sha256(PASSWORD.encode()).hexdigest()}  -",
        "login=analyst region=eu-north mode=slow default=yaml-default",  # not secret; the run conf wins
        "",
    ]
    assert manifest["metadata"] == {"leak": "***"}  # the line was redacted before metadata was read

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == outcome.run.run_id).all()
        rendered = (
            session.query(RenderedTaskInstanceFields)
            .filter(RenderedTaskInstanceFields.run_id == outcome.run.run_id)
            .all()
        )
        xcom_text = json.dumps([x.value for x in xcoms], default=str)
        rendered_text = json.dumps([r.rendered_fields for r in rendered], default=str)
    assert "API_TOKEN" in xcom_text
    doc = outcome.run.dag.get_task("only").doc_md
    assert "`API_TOKEN`" in doc and f"Airflow Variable '{VARIABLE_KEY}'" in doc
    page = f"/valohai/nodes/{outcome.run.dag_id}/{urllib.parse.quote(outcome.run.run_id, safe='')}/only/-1/1"
    headers = {"Authorization": f"Bearer {token}"}
    outputs_page = client.get(page, headers=headers)
    series = client.get(page + "/metadata.jsonl", headers=headers)
    assert outputs_page.status_code == series.status_code == 200
    assert "seen.txt" in outputs_page.text and '"leak": "***"' in series.text
    stored = stored_files()
    assert any(p.name == "manifest.json" for p, _ in stored)
    for secret in (TOKEN, PASSWORD, URI):
        assert secret not in xcom_text, "a secret in XCom"
        assert secret not in rendered_text, "a secret in the rendered fields"
        assert secret not in doc, "a secret in the task docs"
        assert secret not in outputs_page.text + series.text, "a secret on the Outputs page"
        leaks = [str(p) for p, data in stored if secret.encode() in data]
        assert leaks == [], f"a secret in the store: {leaks}"


@pytest.mark.parametrize(
    ("case", "sidecar", "expected"),
    [
        (
            "no-variable",
            "variables:\n  API_TOKEN: {variable: vh_test_absent}\n",
            "variable 'API_TOKEN' (Airflow Variable 'vh_test_absent', declared in `variables:` of the project "
            "in valohai-airflow.yaml): Airflow has no Variable 'vh_test_absent'",
        ),
        (
            "no-connection",
            "variables:\n  DB_URI: {connection: vh_test_absent}\n",
            "variable 'DB_URI' (Airflow Connection 'vh_test_absent' as a URI, declared in `variables:` of the "
            "project in valohai-airflow.yaml): Airflow has no Connection 'vh_test_absent'",
        ),
        (
            "empty-field",
            f"variables:\n  DB_KEY: {{connection: {CONN_ID}, field: extra.key}}\n",
            f"variable 'DB_KEY' (Airflow Connection '{CONN_ID}' field 'extra.key', declared in `variables:` of "
            f"the project in valohai-airflow.yaml): field 'extra.key' of Airflow Connection '{CONN_ID}' is empty",
        ),
    ],
)
def test_a_missing_source_fails_the_node_before_any_container(
    dags_folder: Path,
    airflow_secrets: None,
    case: str,
    sidecar: str,
    expected: str,
) -> None:
    since = time.time()
    outcome = _run(dags_folder, f"vars-{case}", sidecar)
    assert outcome.states == {"only": "failed"}
    (message,) = outcome.errors("only")
    assert f"node 'only': {expected}" in message, message
    assert "The container was not started" in message
    assert containers_created(outcome.run.dag_id, outcome.run.run_id, since) == []


EDGE_PIPELINE = f"""\
- step:
    name: up
    image: {BUSYBOX}
    command: echo up
    environment-variables:
      - {{name: HANDLE}}
- step:
    name: down
    image: {BUSYBOX}
    command: printf %s "$COPIED" | sha256sum > /valohai/outputs/seen-$VH_EXECUTION_ID.txt
    parameters:
      - {{name: i, type: integer, default: 0}}
- task:
    step: down
    name: sweep
    type: grid_search
    parameters:
      - {{name: i, style: multiple, rules: {{items: [1, 2]}}}}
- pipeline:
    name: p
    nodes:
      - {{name: first, type: execution, step: up}}
      - {{name: fan, type: task, task: sweep}}
    edges:
      - [first.environment-variable.HANDLE, fan.environment-variable.COPIED]
"""


def test_an_edge_carries_a_secret_to_every_execution_of_a_task_node(
    dags_folder: Path, airflow_secrets: None
) -> None:
    """The manifest keeps names only, so the edge's value is read again from the upstream's source:
    both mapped executions get the Airflow Variable, and no XCom holds it."""
    outcome = run_pipeline(
        dags_folder,
        "vars-edge",
        EDGE_PIPELINE,
        files={
            "valohai-airflow.yaml": f"steps:\n  up:\n    variables:\n      HANDLE: {{variable: {VARIABLE_KEY}}}\n"
        },
    )
    assert set(outcome.states.values()) == {"success"}, outcome.tries
    assert outcome.xcom("first")["variables"] == ["HANDLE"]
    executions = list(outcome.xcom("fan"))
    assert len(executions) == 2
    digest = f"{hashlib.sha256(TOKEN.encode()).hexdigest()}  -\n"
    for manifest in executions:
        assert manifest["variables"] == ["COPIED"]
        (seen,) = manifest["outputs"]
        assert Path(seen["uri"].removeprefix("file://")).read_text() == digest
    assert TOKEN not in json.dumps([outcome.xcom("first"), executions])
