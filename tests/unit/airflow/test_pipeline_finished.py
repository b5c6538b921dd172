"""The "pipeline finished" data trigger (`after: {pipeline: …}`): its Asset URI, the checks of the
sidecar, the task that emits the event (only in pipelines something waits for) and the event's extra,
filled through Airflow's own outlet-event accessors; the placeholders a started run gets."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, TriggerRule
from airflow.sdk.execution_time.context import OutletEventAccessors

from valohai_airflow.airflow.factory import build_dags
from valohai_airflow.airflow.pipeline_finished import PipelineFinishedOperator
from valohai_airflow.airflow.schedules import apply_trigger_parameters
from valohai_airflow.asset_uris import MAX_EXTRA_PARAMS, normalize, pipeline_finished_extra, pipeline_uri
from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.naming import FINISHED_TASK_ID
from valohai_airflow.plan.sidecar_checks import check_settings
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.sidecar import parse_sidecar_text

VALOHAI_YAML = """\
- step:
    name: extract
    image: busybox
    command: date
    environment-variables:
      - {name: MODE, default: fast}
    parameters:
      - {name: rows, type: integer, default: 5}
- step:
    name: fit
    image: busybox
    command: date
    parameters:
      - {name: note, type: string, default: none}
    inputs:
      - {name: x, optional: true}
- pipeline:
    name: etl
    nodes:
      - {name: a, type: execution, step: extract}
      - {name: b, type: execution, step: extract}
      - {name: c, type: execution, step: fit}
    edges:
      - [a.output.*, c.input.x]
- pipeline:
    name: train
    nodes:
      - {name: fit, type: execution, step: fit}
    edges: []
"""
SIDECAR = """\
triggers:
  - title: after etl
    pipeline: train
    after: {pipeline: etl}
    parameters:
      fit.parameter.note: "{event.run_id}"
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def dags(tmp_path: Path, sidecar: str) -> dict[str, Any]:
    folder = tmp_path / "team"
    folder.mkdir(parents=True)
    (folder / "valohai.yaml").write_text(VALOHAI_YAML)
    (folder / "valohai-airflow.yaml").write_text(sidecar)
    return dict(build_dags(compile_project(folder / "valohai.yaml")))


def test_the_uri_is_one_documented_form_and_the_handler_stays_strict() -> None:
    assert pipeline_uri("team", "etl") == "valohai://pipeline/team/etl"
    assert pipeline_uri("my team", "a/b") == "valohai://pipeline/my%20team/a%2Fb"
    assert Asset("VALOHAI://Pipeline/team/etl/").uri == "valohai://pipeline/team/etl"
    for bad in (
        "valohai://pipeline/team",
        "valohai://pipeline/team/etl/extra",
        "valohai://pipeline//etl",
        "valohai://pipelines/team/etl",
        "valohai://catalogue/pipeline/etl",
    ):
        with pytest.raises(ValueError, match="not a valohai Asset URI"):
            Asset(bad)
    with pytest.raises(ValueError, match="no query"):
        normalize(urllib.parse.urlsplit("valohai://pipeline/team/etl?x=1"))


def test_only_the_pipeline_a_trigger_waits_for_gets_the_finished_task(tmp_path: Path) -> None:
    built = dags(tmp_path, SIDECAR)
    etl, train = built["team__etl"], built["team__train"]
    finished = etl.task_dict[FINISHED_TASK_ID]
    assert isinstance(finished, PipelineFinishedOperator)
    assert finished.upstream_task_ids == {"b", "c"}  # every leaf; `a` is upstream of c
    assert [t.task_id for t in etl.leaves] == [FINISHED_TASK_ID]
    assert finished.trigger_rule == TriggerRule.NONE_FAILED
    assert finished.outlets == [Asset("valohai://pipeline/team/etl")]
    assert FINISHED_TASK_ID not in train.task_dict  # nothing waits for train
    assert train.schedule == Asset("valohai://pipeline/team/etl")

    opted = dags(tmp_path / "opt", SIDECAR + "pipelines:\n  train: {finished_event: true}\n")
    assert FINISHED_TASK_ID in opted["team__train"].task_dict
    disabled = dags(tmp_path / "off", SIDECAR + "    enabled: false\n")
    assert FINISHED_TASK_ID not in disabled["team__etl"].task_dict


@dataclass
class _DagRun:
    """What the operator reads of a DagRun (a stand-in: a real one needs a server)."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    run_type: str = "asset_triggered"


def test_the_event_names_the_run_and_its_params_but_no_variables(tmp_path: Path) -> None:
    etl = dags(tmp_path, SIDECAR)["team__etl"]
    finished = etl.task_dict[FINISHED_TASK_ID]
    params = {k: etl.params[k] for k in etl.params}
    assert "a.variable.MODE" in params  # a non-secret variable is a Param of the trigger form
    events = OutletEventAccessors()
    context = {
        "dag_run": _DagRun("team__etl", "manual__1", {}),
        "params": params,
        "outlet_events": events,
    }
    finished.execute(context)
    extra = events[Asset("valohai://pipeline/team/etl")].extra
    assert (extra["kind"], extra["project"], extra["name"]) == ("pipeline", "team", "etl")
    assert (extra["dag_id"], extra["run_id"]) == ("team__etl", "manual__1")
    assert datetime.fromisoformat(extra["finished"]).tzinfo is not None
    assert extra["params"]["a.parameter.rows"] == 5 and extra["params"]["b.parameter.rows"] == 5
    assert not [k for k in extra["params"] if ".variable." in k], extra["params"]
    assert extra["param_count"] == len(extra["params"])


def test_a_big_run_lists_its_first_params_only() -> None:
    params = {f"p{i}": i for i in range(MAX_EXTRA_PARAMS + 3)}
    extra = pipeline_finished_extra("t", "p", "t__p", "r", datetime(2026, 1, 1, tzinfo=UTC), params)
    assert len(extra["params"]) == MAX_EXTRA_PARAMS and extra["param_count"] == MAX_EXTRA_PARAMS + 3


def test_a_run_started_by_the_event_gets_the_finished_run_id() -> None:
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    parsed = parse_sidecar_text(SIDECAR, "valohai-airflow.yaml")
    assert parsed.settings is not None
    uri = pipeline_uri("team", "etl")
    extra = pipeline_finished_extra("team", "etl", "team__etl", "manual__7", datetime.now(UTC), {})
    event = AssetEventDagRunReferenceResult.model_validate(
        {
            "asset": {"name": uri, "uri": uri, "extra": {}},
            "extra": extra,
            "source_task_id": FINISHED_TASK_ID,
            "source_dag_id": "team__etl",
            "source_run_id": "manual__7",
            "source_map_index": -1,
            "source_aliases": [],
            "timestamp": datetime.now(UTC),
        }
    )
    params: dict[str, Any] = {"fit.parameter.note": "none"}
    context = {
        "triggering_asset_events": TriggeringAssetEventsAccessor.build([event]),
        "dag_run": _DagRun("team__train", "asset_triggered__1", {}),
        "params": params,
    }
    apply_trigger_parameters(context, triggers=parsed.settings.triggers, project_name="team")
    assert params == {"fit.parameter.note": "manual__7"}


def sidecar_problems(text: str, pipelines: list[str]) -> list[str]:
    parsed = parse_sidecar_text(text, "valohai-airflow.yaml")
    if parsed.settings is None:
        return [str(d) for d in parsed.diagnostics.items]
    return [str(d) for d in check_settings(parsed.settings, pipelines).items]


def test_bad_pipeline_conditions_are_errors_at_their_line() -> None:
    assert sidecar_problems(SIDECAR.replace("{pipeline: etl}", "{pipeline: etll}"), ["etl", "train"]) == [
        "valohai-airflow.yaml:4:12: error: trigger 'after etl': after: valohai.yaml has no pipeline 'etll' "
        '(did you mean "etl"?)'
    ]
    loop = "triggers:\n  - title: again\n    pipeline: etl\n    after: {pipeline: etl}\n"
    assert sidecar_problems(loop, ["etl"]) == [
        "valohai-airflow.yaml:4:12: error: trigger 'again': pipeline 'etl' would start itself after each "
        "successful run, for ever (start it on a dataset or model it publishes, or on a cron)"
    ]
    circle = SIDECAR + "  - title: back\n    pipeline: etl\n    after: [{pipeline: train}]\n"
    (problem,) = sidecar_problems(circle, ["etl", "train"])
    assert problem.startswith("valohai-airflow.yaml:9:13: error: trigger 'back': pipelines 'train' and 'etl'")
    version = SIDECAR.replace("{event.run_id}", "{event.version}")
    (problem,) = sidecar_problems(version, ["etl", "train"])
    assert (
        "placeholder event.version is not an event field (they are run_id, dag_id, finished, name, project, uri)"
        in problem
    )


def test_the_loader_reports_an_unknown_pipeline_in_after(tmp_path: Path) -> None:
    with pytest.raises(ValohaiSpecError, match=r"after: valohai\.yaml has no pipeline 'nope'"):
        dags(tmp_path, SIDECAR.replace("{pipeline: etl}", "{pipeline: nope}"))
