"""Data-aware scheduling through real Airflow services (scheduler, dag-processor, API server): a
producer pipeline's node publishes a dataset version; a consumer pipeline whose sidecar trigger says
`after: {dataset: …}` is started by the scheduler on that Asset event, with the event's version in a
parameter and its reference (`dataset://…/v1`) as an input, filled in Python at task start. The
Assets REST API (what the UI's Assets view reads) shows the event's producing task and the consumer.
"""

from __future__ import annotations

import shutil
import urllib.parse
import uuid

from tests.e2e.conftest import RUN_TIMEOUT, AirflowServer, wait_for
from valohai_airflow.asset_uris import asset_uri
from valohai_airflow.plan.naming import dag_id_for

TAG = f"e2e{uuid.uuid4().hex[:8]}"
DATASET = f"{TAG}-images"

PRODUCER = f"""\
- step:
    name: make
    image: valohai-airflow/busybox:1
    command: |-
      echo a > /valohai/outputs/a.csv
      printf '{{"valohai.dataset-versions": ["dataset://{DATASET}/v1"]}}' > /valohai/outputs/a.csv.metadata.json
- pipeline:
    name: produce
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""
CONSUMER = """\
- step:
    name: use
    image: valohai-airflow/busybox:1
    command: cp /valohai/inputs/data/a.csv /valohai/outputs/seen.csv
    parameters:
      - {name: version, type: string, default: none}
    inputs:
      - {name: data, optional: true}
- pipeline:
    name: consume
    nodes:
      - {name: use, type: execution, step: use}
    edges: []
"""
SIDECAR = f"""\
triggers:
  - title: new images
    pipeline: consume
    after: {{dataset: {DATASET}}}
    parameters:
      use.parameter.version: "{{event.version}}"
      use.input.data: "{{event.reference}}"
"""


def test_a_dataset_version_starts_the_pipeline_scheduled_on_it(airflow_server: AirflowServer) -> None:
    server = airflow_server
    producer, consumer = server.dags_folder / "assetprod", server.dags_folder / "assetcons"
    producer.mkdir()
    consumer.mkdir()
    (producer / "valohai.yaml").write_text(PRODUCER)
    (consumer / "valohai.yaml").write_text(CONSUMER)
    (consumer / "valohai-airflow.yaml").write_text(SIDECAR)
    uri = asset_uri("dataset", DATASET)
    producer_id, consumer_id = dag_id_for("assetprod", "produce"), dag_id_for("assetcons", "consume")
    try:
        server.wait_for_dag(producer_id)
        consumer_dag = server.wait_for_dag(consumer_id)
        assert consumer_dag["timetable_summary"] and "Asset" in consumer_dag["timetable_summary"], (
            consumer_dag
        )
        server.api("PATCH", f"/dags/{consumer_id}", json={"is_paused": False}).raise_for_status()
        run_id = server.trigger(producer_id, {})
        run = server.wait_for_run(producer_id, run_id)
        assert run["state"] == "success", server.failures(producer_id, run_id)

        def consumer_run() -> dict[str, object] | None:
            runs = server.get(f"/dags/{consumer_id}/dagRuns")["dag_runs"]
            return next((r for r in runs if r["run_type"] == "asset_triggered"), None)

        started = wait_for(f"an asset-triggered run of {consumer_id}", consumer_run, RUN_TIMEOUT, server)
        consumed_id = str(started["dag_run_id"])
        server.run_ids.append(consumed_id)
        finished = server.wait_for_run(consumer_id, consumed_id)
        assert finished["state"] == "success", server.failures(consumer_id, consumed_id)
        manifest = server.xcom(consumer_id, urllib.parse.quote(consumed_id, safe=""), "use")
        assert manifest["parameters"]["version"] == "v1", manifest["parameters"]
        produced = server.xcom(producer_id, run_id, "make")
        (source,) = manifest["inputs"]["data"]
        assert source["sha256"] == produced["outputs"][0]["sha256"]

        (asset,) = server.get("/assets", uri_pattern=DATASET)["assets"]
        assert asset["uri"] == uri
        assert [d["dag_id"] for d in asset["scheduled_dags"]] == [consumer_id], asset
        assert [a["name"] for a in asset["aliases"]] == ["valohai:assetprod"], asset
        (event,) = server.get("/assets/events", asset_id=asset["id"])["asset_events"]
        assert (event["source_dag_id"], event["source_task_id"], event["source_run_id"]) == (
            producer_id,
            "make",
            run_id,
        )
        assert event["extra"]["reference"] == f"dataset://{DATASET}/v1"
        assert [r["run_id"] for r in event["created_dagruns"]] == [consumed_id]
    finally:
        server.api("PATCH", f"/dags/{consumer_id}", json={"is_paused": True})
        shutil.rmtree(producer, ignore_errors=True)
        shutil.rmtree(consumer, ignore_errors=True)
