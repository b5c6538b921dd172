"""Catalogue changes as Airflow Asset events, through `dag.test()` and a real container: a node that
publishes a dataset version, a model version and a datum alias leaves one AssetEvent per record in
Airflow's database, with the version, reference, files and producing task in its extra, attached to the
project's AssetAlias; a node that publishes nothing leaves none."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import run_pipeline
from valohai_airflow.asset_uris import asset_uri

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PUBLISH = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command: |-
      cd /valohai/outputs
      echo weights > model.bin
      printf '{{"valohai.alias": "%s", "valohai.model-versions": ["model://%s/"]}}' \\
        {{parameter-value:tag}}-best {{parameter-value:tag}}-churn > model.bin.metadata.json
      echo a > a.csv
      printf '{{"valohai.dataset-versions": ["dataset://%s-images/v1"]}}' {{parameter-value:tag}} > a.csv.metadata.json
      echo plain > plain.txt
    parameters:
      - {{name: tag, type: string, default: x}}
- step:
    name: quiet
    image: {BUSYBOX}
    command: echo nothing > /valohai/outputs/n.txt
- pipeline:
    name: p
    nodes:
      - {{name: make, type: execution, step: make}}
      - {{name: quiet, type: execution, step: quiet}}
    edges: []
"""


def test_a_node_publishing_to_the_catalogue_emits_asset_events(dags_folder: Path) -> None:
    from airflow.models.asset import AssetAliasModel, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    tag = f"a{uuid.uuid4().hex[:8]}"  # the session's store and database are shared: names of our own
    outcome = run_pipeline(dags_folder, "assets-emit", PUBLISH, conf={"make.parameter.tag": tag})
    assert outcome.states == {"make": "success", "quiet": "success"}, outcome.errors("make")
    made = outcome.xcom("make")
    outputs = {o["path"]: o for o in made["outputs"]}
    uris = {
        "dataset": asset_uri("dataset", f"{tag}-images"),
        "model": asset_uri("model", f"{tag}-churn"),
        "datum": asset_uri("datum", f"{tag}-best"),
    }
    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri.in_(uris.values()))
        ).all()
        events = {uri: event for uri, event in rows}
        assert sorted(events) == sorted(uris.values()), rows
        assert all(
            (e.source_dag_id, e.source_task_id, e.source_run_id)
            == ("assets-emit__p", "make", outcome.run.run_id)
            for e in events.values()
        )
        aliases = {a.name for e in events.values() for a in e.source_aliases}
        assert aliases == {"valohai:assets-emit"}
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == "valohai:assets-emit"))
        assert alias is not None and {a.uri for a in alias.assets} == set(uris.values())
        dataset = events[uris["dataset"]].extra
        model = events[uris["model"]].extra
        datum = events[uris["datum"]].extra
        quiet = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_run_id == outcome.run.run_id, AssetEvent.source_task_id == "quiet"
            )
        ).all()
    assert (dataset["version"], dataset["reference"]) == ("v1", f"dataset://{tag}-images/v1")
    (file,) = dataset["files"]
    assert (file["name"], file["uri"], file["sha256"]) == (
        "a.csv",
        outputs["a.csv"]["uri"],
        outputs["a.csv"]["sha256"],
    )
    assert dataset["producer"]["execution_id"] == made["execution_id"]
    assert (model["version"], model["reference"]) == ("1", f"model://{tag}-churn/1")
    assert datum["files"][0]["uri"] == outputs["model.bin"]["uri"]
    assert quiet == []  # a node that publishes nothing emits nothing


SWEEP = f"""\
- step:
    name: fit
    image: {BUSYBOX}
    command: |-
      echo {{parameter-value:n}} > /valohai/outputs/m.bin
      printf '{{"valohai.model-versions": ["model://%s/"]}}' {{parameter-value:tag}} > /valohai/outputs/m.bin.metadata.json
    parameters:
      - {{name: n, type: integer, default: 1}}
      - {{name: tag, type: string, default: x}}
- task:
    name: sweep
    step: fit
    parameters:
      - {{name: n, style: multiple, rules: {{items: [1, 2]}}}}
- pipeline:
    name: p
    nodes:
      - {{name: fit, type: task, task: sweep}}
    edges: []
"""


def test_every_execution_of_a_task_node_emits_its_own_event(dags_folder: Path) -> None:
    """A task node's executions are mapped task instances: each declares the alias when it is
    unmapped, and each model version it publishes is one event with its map index."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    tag = f"m{uuid.uuid4().hex[:8]}"
    outcome = run_pipeline(dags_folder, "assets-sweep", SWEEP, conf={"fit.parameter.tag": tag})
    assert set(outcome.states.values()) == {"success"}, outcome.states
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == asset_uri("model", tag))
        ).all()
        found = sorted((e.source_task_id, e.source_map_index, e.extra["version"]) for e in events)
        aliases = {a.name for e in events for a in e.source_aliases}
    assert [(task, index) for task, index, _ in found] == [("fit", 0), ("fit", 1)], found
    assert sorted(version for _, _, version in found) == ["1", "2"]
    assert aliases == {"valohai:assets-sweep"}


FINISHING = f"""\
- step:
    name: s
    image: {BUSYBOX}
    command: echo ok > /valohai/outputs/ok.txt; exit {{parameter-value:code}}
    parameters:
      - {{name: code, type: integer, default: 0}}
- pipeline:
    name: p
    nodes:
      - {{name: a, type: execution, step: s}}
      - {{name: b, type: execution, step: s}}
    edges: []
"""


def test_a_successful_run_emits_the_pipeline_finished_event_once_and_a_failed_one_none(
    dags_folder: Path,
) -> None:
    """`finished_event: true` (what `after: {pipeline: p}` does too) adds the task that emits
    `valohai://pipeline/<project>/p` when no node failed; Airflow runs it on a worker (it has an outlet)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from valohai_airflow.asset_uris import pipeline_uri
    from valohai_airflow.plan.naming import FINISHED_TASK_ID

    sidecar = {"valohai-airflow.yaml": "pipelines:\n  p: {finished_event: true}\n"}
    tag = uuid.uuid4().hex[:8]
    good, bad = f"fin-ok-{tag}", f"fin-bad-{tag}"
    done = run_pipeline(dags_folder, good, FINISHING, files=sidecar)
    assert done.states == {"a": "success", "b": "success", FINISHED_TASK_ID: "success"}
    failed = run_pipeline(dags_folder, bad, FINISHING, files=sidecar, conf={"b.parameter.code": 3})
    assert failed.states == {"a": "success", "b": "failed", FINISHED_TASK_ID: "upstream_failed"}
    assert failed.run.state == "failed"

    def events(uri: str) -> list[Any]:
        with create_session() as session:
            return list(
                session.scalars(
                    select(AssetEvent)
                    .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                    .where(AssetModel.uri == uri)
                ).all()
            )

    (event,) = events(pipeline_uri(good, "p"))
    assert (event.source_dag_id, event.source_task_id, event.source_run_id) == (
        f"{good}__p",
        FINISHED_TASK_ID,
        done.run.run_id,
    )
    extra = event.extra
    assert (extra["kind"], extra["project"], extra["name"]) == ("pipeline", good, "p")
    assert (extra["dag_id"], extra["run_id"]) == (f"{good}__p", done.run.run_id)
    assert extra["params"]["a.parameter.code"] == 0 and extra["finished"]
    assert events(pipeline_uri(bad, "p")) == []  # a failed run emits nothing


def test_a_stopped_run_emits_no_pipeline_finished_event(dags_folder: Path) -> None:
    """`stop-pipeline` ends the run without error, skipping the rest of it: the finished task too."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from valohai_airflow.asset_uris import pipeline_uri
    from valohai_airflow.plan.naming import FINISHED_TASK_ID

    stopping = FINISHING.replace(
        "      - {name: a, type: execution, step: s}\n",
        "      - name: a\n        type: execution\n        step: s\n"
        "        actions:\n          - {when: node-complete, then: stop-pipeline}\n",
    ).replace("edges: []", "edges:\n      - [a.output.*, b.input.x]")
    stopping = stopping.replace(
        "      - {name: code, type: integer, default: 0}\n",
        "      - {name: code, type: integer, default: 0}\n    inputs:\n      - {name: x, optional: true}\n",
    )
    name = f"fin-stop-{uuid.uuid4().hex[:8]}"
    sidecar = {"valohai-airflow.yaml": "pipelines:\n  p: {finished_event: true}\n"}
    outcome = run_pipeline(dags_folder, name, stopping, files=sidecar)
    assert outcome.states == {"a": "success", "b": "skipped", FINISHED_TASK_ID: "skipped"}, outcome.states
    assert outcome.run.state == "success"
    with create_session() as session:
        emitted = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == pipeline_uri(name, "p"))
        ).all()
    assert emitted == []
