"""Secrets through real Airflow services (scheduler, LocalExecutor, task supervisor, API server): an
Airflow Variable and an Airflow Connection created through Airflow's REST API, a pipeline whose node
gets them as environment variables from valohai-airflow.yaml and prints them, and then the task log
file Airflow's supervisor wrote (and the API serves), the XCom, the rendered fields, the task's docs
and every file of the store scanned for the secret values. The Variable's key names nothing Airflow
treats as sensitive (no "token", "password", ...), so only our `mask_secret` can hide its value.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
import uuid

from tests.e2e.conftest import AirflowServer
from valohai_airflow.plan.naming import dag_id_for

TOKEN = f"tok-{uuid.uuid4().hex}"
PASSWORD = f"pw-{uuid.uuid4().hex}"
VARIABLE_KEY = "vh_e2e_handle"
CONN_ID = "vh_e2e_warehouse"

VALOHAI_YAML = """\
- step:
    name: s
    image: valohai-airflow/busybox:1
    command:
      - echo "token=$API_HANDLE"
      - echo "pw=$DB_PASSWORD"
      - printf %s "$API_HANDLE" | sha256sum
      - echo "login=$DB_LOGIN"
- pipeline:
    name: p
    nodes:
      - {name: only, type: execution, step: s}
    edges: []
"""
SIDECAR = f"""\
variables:
  API_HANDLE: {{variable: {VARIABLE_KEY}}}
  DB_PASSWORD: {{connection: {CONN_ID}, field: password}}
  DB_LOGIN: {{connection: {CONN_ID}, field: login, secret: false}}
"""


def test_a_secret_printed_by_the_container_is_masked_in_the_task_log(airflow_server: AirflowServer) -> None:
    server = airflow_server
    created = server.api("POST", "/variables", json={"key": VARIABLE_KEY, "value": TOKEN})
    assert created.status_code in (200, 201), created.text
    created = server.api(
        "POST",
        "/connections",
        json={"connection_id": CONN_ID, "conn_type": "generic", "login": "analyst", "password": PASSWORD},
    )
    assert created.status_code in (200, 201), created.text
    project = server.dags_folder / "vars"
    project.mkdir()
    (project / "valohai-airflow.yaml").write_text(SIDECAR)
    (project / "valohai.yaml").write_text(VALOHAI_YAML)
    try:
        dag_id = dag_id_for("vars", "p")
        server.wait_for_dag(dag_id)
        run_id = server.trigger(dag_id, {})
        run = server.wait_for_run(dag_id, run_id)
        assert run["state"] == "success", server.failures(dag_id, run_id)

        files = [p for p in (server.home / "logs").rglob("*") if p.is_file() and f"run_id={run_id}" in str(p)]
        assert files, "Airflow wrote no task log file"
        log_file = "\n".join(p.read_text(errors="replace") for p in files)
        quoted = urllib.parse.quote(run_id, safe="")
        served = server.api(
            "GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/only/logs/1", params={"full_content": True}
        ).text
        for log in (log_file, served):
            assert "token=***" in log and "pw=***" in log, log[-3000:]
            assert "login=analyst" in log  # not secret: shown
            assert hashlib.sha256(TOKEN.encode()).hexdigest() in log  # the container had the real value

        manifest = server.xcom(dag_id, run_id, "only")
        assert manifest["variables"] == ["API_HANDLE", "DB_LOGIN", "DB_PASSWORD"]
        instance = server.get(f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/only")
        task = server.get(f"/dags/{dag_id}/tasks/only")
        assert "`API_HANDLE`" in (task.get("doc_md") or "")
        seen = {
            "task log file": log_file,
            "task log (API)": served,
            "XCom": json.dumps(manifest),
            "rendered fields": json.dumps(instance.get("rendered_fields")),
            "task docs": json.dumps(task),
        }
        stored = [(p, p.read_bytes()) for p in server.store.rglob("*") if p.is_file()]
        assert stored
        for secret in (TOKEN, PASSWORD):
            assert [where for where, text in seen.items() if secret in text] == []
            assert [str(p) for p, data in stored if secret.encode() in data] == []
    finally:
        shutil.rmtree(project, ignore_errors=True)
        server.api("DELETE", f"/variables/{VARIABLE_KEY}")
        server.api("DELETE", f"/connections/{CONN_ID}")
