"""Data-aware scheduling through real Airflow services (scheduler, dag-processor, API server), the
issue's "done when" on the local store (the S3 leg of the same chain: tests/integration/test_catalogue_s3.py):

1. pipeline `produce` (triggered once) publishes a dataset version, moves a datum alias and creates a
   model version;
2. pipeline `consume`, whose sidecar trigger says `after: {dataset: …}`, starts by itself and reads
   `dataset://…/latest` and `datum://<alias>` (input defaults), with the event's version in a
   parameter and its reference as another input (filled in Python at task start);
3. the step DAG of `score`, `after: {model: …}`, starts by itself and reads `model://…/latest`;
4. pipeline `report`, `after: {pipeline: consume}`, starts when `consume` succeeded, with the finished
   run's id from `{event.run_id}`;
5. `valohai-airflow data dataset create` (outside any task) sends v2's Asset event through the REST
   API, and `consume` starts again and reads v2 as latest; an alias no DAG is scheduled on gets no
   event, and the command says so.
The Assets REST API (what the UI's Assets view reads) shows the events' producing tasks and consumers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.conftest import RUN_TIMEOUT, AirflowServer, wait_for
from valohai_airflow.asset_uris import asset_uri, pipeline_uri
from valohai_airflow.plan.naming import FINISHED_TASK_ID, dag_id_for

TAG = f"e2e{uuid.uuid4().hex[:8]}"
DATASET, ALIAS, MODEL = f"{TAG}-images", f"{TAG}-best", f"{TAG}-churn"

PRODUCER = f"""\
- step:
    name: make
    image: valohai-airflow/busybox:1
    command: |-
      cd /valohai/outputs
      echo a > a.csv
      printf '{{"valohai.dataset-versions": ["dataset://{DATASET}/v1"]}}' > a.csv.metadata.json
      echo weights > model.bin
      printf '{{"valohai.alias": "{ALIAS}", "valohai.model-versions": ["model://{MODEL}/"]}}' > model.bin.metadata.json
- pipeline:
    name: produce
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""
CONSUMER = f"""\
- step:
    name: use
    image: valohai-airflow/busybox:1
    command: cat /valohai/inputs/data/* /valohai/inputs/model/* > /valohai/outputs/seen.txt
    parameters:
      - {{name: version, type: string, default: none}}
    inputs:
      - {{name: data, default: "dataset://{DATASET}/latest"}}
      - {{name: model, default: "datum://{ALIAS}"}}
      - {{name: exact, optional: true}}
- step:
    name: score
    image: valohai-airflow/busybox:1
    command: cp /valohai/inputs/model/model.bin /valohai/outputs/scored.bin
    inputs:
      - {{name: model, default: "model://{MODEL}/latest"}}
- step:
    name: report
    image: valohai-airflow/busybox:1
    command: echo {{parameter:upstream}} > /valohai/outputs/report.txt
    parameters:
      - {{name: upstream, type: string, default: none}}
- pipeline:
    name: consume
    nodes:
      - {{name: use, type: execution, step: use}}
    edges: []
- pipeline:
    name: report
    nodes:
      - {{name: report, type: execution, step: report}}
    edges: []
"""
SIDECAR = f"""\
triggers:
  - title: new images
    pipeline: consume
    after: {{dataset: {DATASET}}}
    parameters:
      use.parameter.version: "{{event.version}}"
      use.input.exact: "{{event.reference}}"
  - title: new model
    step: score
    after: {{model: {MODEL}}}
  - title: after consume
    pipeline: report
    after: {{pipeline: consume}}
    parameters:
      report.parameter.upstream: "{{event.run_id}}"
"""


def test_catalogue_changes_and_a_finished_pipeline_start_the_dags_scheduled_on_them(
    airflow_server: AirflowServer, tmp_path: Path
) -> None:
    server = airflow_server
    producer, consumer = server.dags_folder / "assetprod", server.dags_folder / "assetcons"
    producer.mkdir()
    consumer.mkdir()
    (producer / "valohai.yaml").write_text(PRODUCER)
    (consumer / "valohai.yaml").write_text(CONSUMER)
    (consumer / "valohai-airflow.yaml").write_text(SIDECAR)
    producer_id = dag_id_for("assetprod", "produce")
    consumer_id, report_id = dag_id_for("assetcons", "consume"), dag_id_for("assetcons", "report")
    score_id = dag_id_for("assetcons", "score", "step")
    scheduled = (consumer_id, score_id, report_id)
    try:
        server.wait_for_dag(producer_id)
        for dag_id in scheduled:
            dag = server.wait_for_dag(dag_id)
            assert dag["timetable_summary"] and "Asset" in dag["timetable_summary"], dag
            server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        run_id = server.trigger(producer_id, {})
        run = server.wait_for_run(producer_id, run_id)
        assert run["state"] == "success", server.failures(producer_id, run_id)
        produced = {o["path"]: o for o in server.xcom(producer_id, run_id, "make")["outputs"]}

        # 2. consume: dataset latest, the alias, the event's version and reference
        (consumed_id,) = started_runs(server, consumer_id, 1)
        manifest = server.xcom(consumer_id, urllib.parse.quote(consumed_id, safe=""), "use")
        assert manifest["parameters"]["version"] == "v1", manifest["parameters"]
        assert sha256s(manifest, "data") == [produced["a.csv"]["sha256"]]
        assert sha256s(manifest, "model") == [produced["model.bin"]["sha256"]]
        assert sha256s(manifest, "exact") == [produced["a.csv"]["sha256"]]  # {event.reference}: v1

        # 3. the step DAG on the model reads model://…/latest
        (scored_id,) = started_runs(server, score_id, 1)
        scored = server.xcom(score_id, urllib.parse.quote(scored_id, safe=""), "score")
        assert sha256s(scored, "model") == [produced["model.bin"]["sha256"]]

        # 4. consume finished: report starts with its run id
        (reported_id,) = started_runs(server, report_id, 1)
        report = server.xcom(report_id, urllib.parse.quote(reported_id, safe=""), "report")
        assert report["parameters"]["upstream"] == consumed_id, report["parameters"]
        (finished,) = asset_events(server, pipeline_uri("assetcons", "consume"))
        assert (finished["source_dag_id"], finished["source_task_id"], finished["source_run_id"]) == (
            consumer_id,
            FINISHED_TASK_ID,
            consumed_id,
        )
        assert (
            finished["extra"]["run_id"] == consumed_id
            and finished["extra"]["params"]["use.parameter.version"] == "v1"
        )
        assert [r["run_id"] for r in finished["created_dagruns"]] == [reported_id]

        # the Assets view: the dataset's producing alias, its consumer, the event's producing task
        (asset,) = server.get("/assets", uri_pattern=DATASET)["assets"]
        assert asset["uri"] == asset_uri("dataset", DATASET)
        assert [d["dag_id"] for d in asset["scheduled_dags"]] == [consumer_id], asset
        assert [a["name"] for a in asset["aliases"]] == ["valohai:assetprod"], asset
        (event,) = asset_events(server, asset_uri("dataset", DATASET))
        assert (event["source_dag_id"], event["source_task_id"], event["source_run_id"]) == (
            producer_id,
            "make",
            run_id,
        )
        assert event["extra"]["reference"] == f"dataset://{DATASET}/v1"
        assert [r["run_id"] for r in event["created_dagruns"]] == [consumed_id]

        # 5. `valohai-airflow data` outside any task: v2 starts consume again, which reads it as latest
        # (copied into the store: a node may read local files only from the store and allowed folders)
        (tmp_path / "b.csv").write_text("b\n")
        out = data_cli(server, "dataset", "create", f"{DATASET}/v2", str(tmp_path / "b.csv"), "--copy")
        assert (
            f"Asset event {asset_uri('dataset', DATASET)} (dataset://{DATASET}/v2) sent to Airflow" in out
        ), out
        out = data_cli(server, "alias", "set", f"{TAG}-nobody", str(tmp_path / "b.csv"))
        assert f"no Asset event for {asset_uri('datum', TAG + '-nobody')}: no DAG" in out, out
        again = next(r for r in started_runs(server, consumer_id, 2) if r != consumed_id)
        manifest = server.xcom(consumer_id, urllib.parse.quote(again, safe=""), "use")
        assert manifest["parameters"]["version"] == "v2", manifest["parameters"]
        assert sha256s(manifest, "data") == [hashlib.sha256(b"b\n").hexdigest()], manifest["inputs"]["data"]
        (by_api,) = [
            e for e in asset_events(server, asset_uri("dataset", DATASET)) if e["extra"]["version"] == "v2"
        ]
        assert by_api["extra"]["from_rest_api"] is True and by_api["source_task_id"] is None
        server.wait_until_idle()  # report's second run, after consume's second
    finally:
        for dag_id in scheduled:
            server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        shutil.rmtree(producer, ignore_errors=True)
        shutil.rmtree(consumer, ignore_errors=True)


def started_runs(server: AirflowServer, dag_id: str, count: int) -> list[str]:
    """The ids of `count` asset-triggered runs of `dag_id`, once all of them succeeded."""

    def runs() -> list[dict[str, Any]] | None:
        found = [
            r for r in server.get(f"/dags/{dag_id}/dagRuns")["dag_runs"] if r["run_type"] == "asset_triggered"
        ]
        return found if len(found) >= count else None

    found = wait_for(f"{count} asset-triggered run(s) of {dag_id}", runs, RUN_TIMEOUT, server)
    ids = [str(r["dag_run_id"]) for r in found]
    server.run_ids.extend(ids)
    for run_id in ids:
        finished = server.wait_for_run(dag_id, urllib.parse.quote(run_id, safe=""))
        assert finished["state"] == "success", server.failures(dag_id, run_id)
    return ids


def asset_events(server: AirflowServer, uri: str) -> list[dict[str, Any]]:
    (asset,) = [a for a in server.get("/assets", uri_pattern=uri)["assets"] if a["uri"] == uri]
    return list(server.get("/assets/events", asset_id=asset["id"])["asset_events"])


def sha256s(manifest: dict[str, Any], name: str) -> list[str]:
    return [f["sha256"] for f in manifest["inputs"][name]]


def data_cli(server: AirflowServer, *argv: str) -> str:
    """`valohai-airflow data --store <the server's store> …` with the client's settings in the environment."""
    env = {
        **os.environ,
        "AIRFLOW_URL": server.base_url,
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": server.password,
        "XDG_CONFIG_HOME": str(server.home / "no-config"),
    }
    env.pop("AIRFLOW_TOKEN", None)
    command = [sys.executable, "-m", "valohai_airflow.cli", "data", "--store", str(server.store), *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
