"""Data-aware scheduling through real Airflow services (scheduler, dag-processor, API server), the
issue's "done when" on the local store (the chain's projects: tests/e2e/asset_chain.py; steps 1-3 on
the S3 store: tests/e2e/test_assets_s3.py):

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
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

from tests.e2e.asset_chain import (
    CONSUMER_ID,
    PRODUCER_ID,
    REPORT_ID,
    AssetChain,
    asset_events,
    installed,
    publish_and_consume,
    sha256s,
    started_runs,
)
from tests.e2e.conftest import AirflowServer
from valohai_airflow.asset_uris import asset_uri, pipeline_uri
from valohai_airflow.plan.naming import FINISHED_TASK_ID

CHAIN = AssetChain(f"e2e{uuid.uuid4().hex[:8]}")
DATASET = CHAIN.dataset


def test_catalogue_changes_and_a_finished_pipeline_start_the_dags_scheduled_on_them(
    airflow_server: AirflowServer, tmp_path: Path
) -> None:
    server = airflow_server
    with installed(server, CHAIN):
        # 1.-3. produce publishes; consume and score start by themselves and read what it published
        chain = publish_and_consume(server, report=True)
        consumed_id = chain.consumed_run

        # 4. consume finished: report starts with its run id
        (reported_id,) = started_runs(server, REPORT_ID, 1)
        report = server.xcom(REPORT_ID, urllib.parse.quote(reported_id, safe=""), "report")
        assert report["parameters"]["upstream"] == consumed_id, report["parameters"]
        (finished,) = asset_events(server, pipeline_uri("assetcons", "consume"))
        assert (finished["source_dag_id"], finished["source_task_id"], finished["source_run_id"]) == (
            CONSUMER_ID,
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
        assert [d["dag_id"] for d in asset["scheduled_dags"]] == [CONSUMER_ID], asset
        assert [a["name"] for a in asset["aliases"]] == ["valohai:assetprod"], asset
        (event,) = asset_events(server, asset_uri("dataset", DATASET))
        assert (event["source_dag_id"], event["source_task_id"], event["source_run_id"]) == (
            PRODUCER_ID,
            "make",
            chain.producer_run,
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
        out = data_cli(server, "alias", "set", f"{CHAIN.tag}-nobody", str(tmp_path / "b.csv"))
        assert f"no Asset event for {asset_uri('datum', CHAIN.tag + '-nobody')}: no DAG" in out, out
        again = next(r for r in started_runs(server, CONSUMER_ID, 2) if r != consumed_id)
        manifest = server.xcom(CONSUMER_ID, urllib.parse.quote(again, safe=""), "use")
        assert manifest["parameters"]["version"] == "v2", manifest["parameters"]
        assert sha256s(manifest, "data") == [hashlib.sha256(b"b\n").hexdigest()], manifest["inputs"]["data"]
        (by_api,) = [
            e for e in asset_events(server, asset_uri("dataset", DATASET)) if e["extra"]["version"] == "v2"
        ]
        assert by_api["extra"]["from_rest_api"] is True and by_api["source_task_id"] is None
        server.wait_until_idle()  # report's second run, after consume's second


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
