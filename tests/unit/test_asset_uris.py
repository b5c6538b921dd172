"""The `valohai://` Asset URIs and event extras, data triggers (`after:`) in valohai-airflow.yaml and
the schedules they compile to. Airflow's own Asset classes are used as they are (no server)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

from tests.unit.runtime.test_runtime_catalogue import env, run_train  # noqa: F401  (the fixture)
from valohai_airflow import provider
from valohai_airflow.airflow.assets import data_schedule
from valohai_airflow.airflow.schedules import apply_trigger_parameters, dag_schedule
from valohai_airflow.asset_uris import MAX_EXTRA_FILES, asset_uri, catalogue_events, normalize
from valohai_airflow.spec.data_triggers import fill_placeholders
from valohai_airflow.spec.diagnostics import Severity
from valohai_airflow.spec.sidecar import ProjectSettings, parse_sidecar_text


def settings(text: str) -> ProjectSettings:
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is not None, [str(d) for d in result.diagnostics.items]
    return result.settings


def errors(text: str) -> list[str]:
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is None
    return [str(d) for d in result.diagnostics.items if d.severity is Severity.ERROR]


def test_uris_are_the_documented_forms_with_the_name_as_one_segment() -> None:
    assert asset_uri("dataset", "images") == "valohai://catalogue/dataset/images"
    assert asset_uri("datum", "production-model") == "valohai://catalogue/datum/production-model"
    assert asset_uri("model", "churn v2?#") == "valohai://catalogue/model/churn%20v2%3F%23"
    with pytest.raises(ValueError, match="not a catalogue kind"):
        asset_uri("pipeline", "x")  # type: ignore[arg-type]


def test_airflow_normalises_through_the_registered_handler() -> None:
    """Airflow sanitises every Asset URI with the handler `asset-uris` registers for `valohai`."""
    (registered,) = provider.get_provider_info()["asset-uris"]
    assert registered == {"schemes": ["valohai"], "handler": "valohai_airflow.asset_uris.normalize"}
    assert Asset("VALOHAI://Catalogue/dataset/images/").uri == "valohai://catalogue/dataset/images"
    for bad in ("valohai://store/dataset/x", "valohai://catalogue/table/x", "valohai://catalogue/dataset"):
        with pytest.raises(ValueError, match="not a valohai Asset URI"):
            Asset(bad)
    with pytest.raises(ValueError, match="no query"):
        normalize(urllib.parse.urlsplit("valohai://catalogue/model/m?x=1"))


def test_published_records_become_events_with_version_files_and_producer(env: dict[str, Any]) -> None:  # noqa: F811
    done = run_train(
        env,
        "run1",
        {"model.bin": b"weights", **{f"images/{i}.png": b"x" for i in range(MAX_EXTRA_FILES + 1)}},
        {
            "model.bin": {"valohai.alias": "best", "valohai.model-versions": ["model://churn/"]},
            **{f"images/{i}.png": {"valohai.dataset-versions": ["dataset://images/v1"]} for i in range(101)},
        },
    )
    events = {e.uri: e.extra for e in catalogue_events(done.published)}
    assert list(events) == [
        "valohai://catalogue/dataset/images",
        "valohai://catalogue/datum/best",
        "valohai://catalogue/model/churn",
    ]
    dataset = events["valohai://catalogue/dataset/images"]
    assert (dataset["version"], dataset["reference"], dataset["file_count"]) == (
        "v1",
        "dataset://images/v1",
        101,
    )
    assert len(dataset["files"]) == MAX_EXTRA_FILES
    assert set(dataset["files"][0]) == {"name", "uri", "size", "sha256"} and dataset["files"][0]["sha256"]
    assert dataset["producer"]["dag_id"] == "proj__p" and dataset["producer"]["node"] == "train"
    alias = events["valohai://catalogue/datum/best"]
    assert alias["version"] == "1" and alias["reference"].startswith("datum://")
    assert alias["reference"] != "datum://best"  # the file itself, not the alias that moves on
    model = events["valohai://catalogue/model/churn"]
    assert (model["version"], model["reference"], model["files"][0]["name"]) == (
        "1",
        "model://churn/1",
        "model.bin",
    )


DATA = """\
triggers:
  - title: new images
    pipeline: train
    after: {dataset: images}
    parameters:
      train.input.images: "{event.reference}"
      note: "v={event.version} from {event.uri}"
  - title: model or alias
    pipeline: train
    after: [{model: churn}, {alias: best}]
  - title: nightly
    pipeline: train
    cron: "@daily"
"""


def test_data_triggers_parse_and_compile_to_asset_schedules() -> None:
    parsed = settings(DATA)
    images, either, nightly = parsed.triggers
    assert [c.asset for c in images.after] == [("dataset", "images")]
    assert [c.asset for c in either.after] == [("model", "churn"), ("datum", "best")]
    assert data_schedule([images], "proj") == Asset("valohai://catalogue/dataset/images")
    assert data_schedule([images, either], "proj") == AssetAny(
        Asset("valohai://catalogue/dataset/images"),
        Asset("valohai://catalogue/model/churn"),
        Asset("valohai://catalogue/datum/best"),
    )
    both = dag_schedule((images, nightly), "proj")
    assert isinstance(both, AssetOrTimeSchedule)
    assert isinstance(dag_schedule((nightly,), "proj"), CronTriggerTimetable)
    assert dag_schedule((images,), "proj") == Asset("valohai://catalogue/dataset/images")
    midnight = datetime(2024, 1, 1, tzinfo=UTC)
    assert nightly.fires_at(midnight) and not images.fires_at(midnight)  # a data trigger has no cron


def test_placeholders_are_filled_in_python_from_the_event() -> None:
    event = {"version": "v2", "reference": "dataset://images/v2", "uri": "valohai://catalogue/dataset/images"}
    assert fill_placeholders("{event.reference}", event) == "dataset://images/v2"
    assert fill_placeholders(["{event.version}", 3], event) == ["v2", 3]
    assert fill_placeholders("{{ dag_run.conf }} {event.version}", event) == "{{ dag_run.conf }} v2"
    assert fill_placeholders(7, event) == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "triggers:\n  - title: T\n    pipeline: p\n",
            "valohai-airflow.yaml:2:5: error: trigger 'T': trigger 'T' needs exactly one of 'cron' (a schedule) "
            "or 'after' (a data change)",
        ),
        (
            "triggers:\n  - title: T\n    pipeline: p\n    cron: '@daily'\n    after: {dataset: d}\n",
            "valohai-airflow.yaml:2:5: error: trigger 'T': trigger 'T' needs exactly one of 'cron' (a schedule) "
            "or 'after' (a data change)",
        ),
        (
            "triggers:\n  - title: T\n    pipeline: p\n    after: {dataset: d, model: m}\n",
            "valohai-airflow.yaml:4:12: error: trigger 'T': a data condition names exactly one of "
            "'dataset', 'alias', 'model' or 'pipeline'",
        ),
        (
            "triggers:\n  - title: T\n    pipeline: p\n    after: {table: d}\n",
            "valohai-airflow.yaml:4:13: error: data condition: unknown key 'table' (valid keys: dataset, alias, model, "
            "pipeline)",
        ),
        (
            "triggers:\n  - title: T\n    pipeline: p\n    after: {dataset: d}\n"
            "    parameters: {x: '{event.size}'}\n",
            "valohai-airflow.yaml:2:5: error: trigger 'T': trigger 'T', parameter 'x': placeholder event.size is not an event "
            "field (they are version, reference, name, uri)",
        ),
        (
            "triggers:\n  - title: T\n    pipeline: p\n    after: {dataset: d}\n    catchup: true\n",
            "valohai-airflow.yaml:2:5: error: trigger 'T': trigger 'T': 'catchup': only for a cron, and a data trigger",
        ),
    ],
)
def test_bad_data_triggers_are_errors_with_their_line(text: str, message: str) -> None:
    found = errors(text)
    assert any(error.startswith(message) for error in found), found


@dataclass
class _DagRun:
    """What the hook reads of a DagRun (a stand-in: a real one needs a server)."""

    conf: dict[str, Any]
    run_type: str = "asset_triggered"


def _event(uri: str, version: str, when: datetime) -> Any:
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    return AssetEventDagRunReferenceResult.model_validate(
        {
            "asset": {"name": uri, "uri": uri, "extra": {}},
            "extra": {"version": version, "reference": f"dataset://images/{version}", "name": "images"},
            "source_task_id": "make",
            "source_dag_id": "prod__p",
            "source_run_id": "r",
            "source_map_index": -1,
            "source_aliases": [{"name": "valohai:prod"}],
            "timestamp": when,
        }
    )


def test_a_run_started_by_events_gets_the_newest_events_values_and_the_run_conf_wins() -> None:
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    images, either, _ = settings(DATA).triggers
    uri = asset_uri("dataset", "images")
    events = TriggeringAssetEventsAccessor.build(
        [
            _event(uri, "v2", datetime(2026, 1, 2, tzinfo=UTC)),
            _event(uri, "v1", datetime(2026, 1, 1, tzinfo=UTC)),
        ]
    )
    params: dict[str, Any] = {"note": "default", "train.input.images": []}
    context = {"triggering_asset_events": events, "dag_run": _DagRun(conf={}), "params": params}
    apply_trigger_parameters(context, triggers=(images, either), project_name="prod")
    assert params == {
        "train.input.images": "dataset://images/v2",
        "note": f"v=v2 from {uri}",
    }
    params = {"note": "default", "train.input.images": []}
    context = {
        "triggering_asset_events": events,
        "dag_run": _DagRun(conf={"note": "mine"}),
        "params": params,
    }
    apply_trigger_parameters(context, triggers=(images,), project_name="prod")
    assert params == {"note": "default", "train.input.images": "dataset://images/v2"}  # conf's key untouched
    params = {"note": "default"}
    manual = {
        "triggering_asset_events": events,
        "dag_run": _DagRun(conf={}, run_type="manual"),
        "params": params,
    }
    apply_trigger_parameters(manual, triggers=(images,), project_name="prod")
    assert params == {"note": "default"}  # a manual run never gets a trigger's values
