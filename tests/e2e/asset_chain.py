"""The data-aware chain of issue 21's "done when", shared by the e2e tests of the local store
(test_assets.py) and of the S3 store (test_assets_s3.py), each on its own real Airflow:

project `assetprod`: pipeline `produce` publishes a dataset version, moves a datum alias and creates a
model version; project `assetcons`: pipeline `consume`, scheduled on the dataset, reads
`dataset://…/latest` and `datum://<alias>` (with the event's version in a parameter and its reference
as another input); the step DAG of `score`, scheduled on the model, reads `model://…/latest`; pipeline
`report` starts when `consume` succeeded.
"""

from __future__ import annotations

import contextlib
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.e2e.conftest import RUN_TIMEOUT, AirflowServer, wait_for
from valohai_airflow.plan.naming import dag_id_for

PRODUCER_PROJECT, CONSUMER_PROJECT = "assetprod", "assetcons"
PRODUCER_ID = dag_id_for(PRODUCER_PROJECT, "produce")
CONSUMER_ID = dag_id_for(CONSUMER_PROJECT, "consume")
REPORT_ID = dag_id_for(CONSUMER_PROJECT, "report")
SCORE_ID = dag_id_for(CONSUMER_PROJECT, "score", "step")


@dataclass(frozen=True)
class AssetChain:
    """The two projects' files; `tag` keeps their catalogue names apart from any other test's."""

    tag: str

    @property
    def dataset(self) -> str:
        return f"{self.tag}-images"

    @property
    def alias(self) -> str:
        return f"{self.tag}-best"

    @property
    def model(self) -> str:
        return f"{self.tag}-churn"

    def producer_yaml(self) -> str:
        return f"""\
- step:
    name: make
    image: valohai-airflow/busybox:1
    command: |-
      cd /valohai/outputs
      echo a > a.csv
      printf '{{"valohai.dataset-versions": ["dataset://{self.dataset}/v1"]}}' > a.csv.metadata.json
      echo weights > model.bin
      printf '{{"valohai.alias": "{self.alias}", "valohai.model-versions": ["model://{self.model}/"]}}' > model.bin.metadata.json
- pipeline:
    name: produce
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""

    def consumer_yaml(self) -> str:
        return f"""\
- step:
    name: use
    image: valohai-airflow/busybox:1
    command: cat /valohai/inputs/data/* /valohai/inputs/model/* > /valohai/outputs/seen.txt
    parameters:
      - {{name: version, type: string, default: none}}
    inputs:
      - {{name: data, default: "dataset://{self.dataset}/latest"}}
      - {{name: model, default: "datum://{self.alias}"}}
      - {{name: exact, optional: true}}
- step:
    name: score
    image: valohai-airflow/busybox:1
    command: cp /valohai/inputs/model/model.bin /valohai/outputs/scored.bin
    inputs:
      - {{name: model, default: "model://{self.model}/latest"}}
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

    def sidecar(self) -> str:
        return f"""\
triggers:
  - title: new images
    pipeline: consume
    after: {{dataset: {self.dataset}}}
    parameters:
      use.parameter.version: "{{event.version}}"
      use.input.exact: "{{event.reference}}"
  - title: new model
    step: score
    after: {{model: {self.model}}}
  - title: after consume
    pipeline: report
    after: {{pipeline: consume}}
    parameters:
      report.parameter.upstream: "{{event.run_id}}"
"""


@dataclass(frozen=True)
class ChainRuns:
    """What the chain's first round did: the producer's run and outputs, and the two started runs."""

    producer_run: str
    produced: dict[str, dict[str, Any]]  # the producer's output records by path
    consumed_run: str
    consumed: dict[str, Any]  # the manifest of `consume`'s node
    scored_run: str
    scored: dict[str, Any]  # the manifest of `score`


@contextlib.contextmanager
def installed(server: AirflowServer, chain: AssetChain) -> Iterator[None]:
    """The two projects in the server's dags folder; afterwards their scheduled DAGs paused and the
    folders removed."""
    producer, consumer = server.dags_folder / PRODUCER_PROJECT, server.dags_folder / CONSUMER_PROJECT
    producer.mkdir()
    consumer.mkdir()
    (producer / "valohai.yaml").write_text(chain.producer_yaml())
    (consumer / "valohai.yaml").write_text(chain.consumer_yaml())
    (consumer / "valohai-airflow.yaml").write_text(chain.sidecar())
    try:
        yield
    finally:
        for dag_id in (CONSUMER_ID, SCORE_ID, REPORT_ID):
            server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
        shutil.rmtree(producer, ignore_errors=True)
        shutil.rmtree(consumer, ignore_errors=True)


def publish_and_consume(server: AirflowServer, *, report: bool) -> ChainRuns:
    """Unpause the DAGs scheduled on the catalogue (and `report`, on `consume`, if asked), trigger
    `produce` once, and wait for `consume` and `score` to start by themselves and succeed; each
    read the files `produce` published (sha256)."""
    server.wait_for_dag(PRODUCER_ID)
    for dag_id in (CONSUMER_ID, SCORE_ID, *([REPORT_ID] if report else [])):
        dag = server.wait_for_dag(dag_id)
        assert dag["timetable_summary"] and "Asset" in dag["timetable_summary"], dag
        server.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    producer_run = server.trigger(PRODUCER_ID, {})
    run = server.wait_for_run(PRODUCER_ID, producer_run)
    assert run["state"] == "success", server.failures(PRODUCER_ID, producer_run)
    produced = {o["path"]: o for o in server.xcom(PRODUCER_ID, producer_run, "make")["outputs"]}

    # consume: dataset latest, the alias, the event's version and reference
    (consumed_run,) = started_runs(server, CONSUMER_ID, 1)
    consumed = server.xcom(CONSUMER_ID, urllib.parse.quote(consumed_run, safe=""), "use")
    assert consumed["parameters"]["version"] == "v1", consumed["parameters"]
    assert sha256s(consumed, "data") == [produced["a.csv"]["sha256"]]
    assert sha256s(consumed, "model") == [produced["model.bin"]["sha256"]]
    assert sha256s(consumed, "exact") == [produced["a.csv"]["sha256"]]  # {event.reference}: v1

    # the step DAG on the model reads model://…/latest
    (scored_run,) = started_runs(server, SCORE_ID, 1)
    scored = server.xcom(SCORE_ID, urllib.parse.quote(scored_run, safe=""), "score")
    assert sha256s(scored, "model") == [produced["model.bin"]["sha256"]]
    return ChainRuns(producer_run, produced, consumed_run, consumed, scored_run, scored)


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
