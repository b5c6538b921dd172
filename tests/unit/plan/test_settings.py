"""compile_project with a valohai-airflow.yaml beside valohai.yaml: settings on the plan, checks against
valohai.yaml, errors of both files together, and the sidecar as part of the content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.spec.diagnostics import ValohaiSpecError

VALOHAI = """\
- step:
    name: train
    image: busybox
    command: date
    parameters:
      - {name: epochs, type: integer, default: 5, min: 1}
      - {name: rate, type: float, default: 0.1}
      - {name: mode, type: string, default: a, choices: [a, b]}
    inputs:
      - {name: data, optional: true}
- pipeline:
    name: weekly
    nodes:
      - {name: a, type: execution, step: train}
      - {name: b, type: execution, step: train}
    edges:
      - [a.metadata.e, b.parameter.epochs]
    parameters:
      - {name: speed, targets: [a.parameter.rate], default: 0.5}
- pipeline:
    name: other
    nodes:
      - {name: a, type: execution, step: train}
    edges: []
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def project(tmp_path: Path, sidecar: str | None, valohai: str = VALOHAI) -> Path:
    (tmp_path / "valohai.yaml").write_text(valohai)
    if sidecar is not None:
        (tmp_path / "valohai-airflow.yaml").write_text(sidecar)
    return tmp_path / "valohai.yaml"


def compile_errors(path: Path) -> list[str]:
    with pytest.raises(ValohaiSpecError) as info:
        compile_project(path)
    return [f"{Path(d.location.file).name}:{d.location.line}: {d.message}" for d in info.value.diagnostics]


def test_no_sidecar_gives_default_settings_and_the_hash_of_valohai_yaml(tmp_path: Path) -> None:
    path = project(tmp_path, None)
    plan = compile_project(path)
    assert plan.settings.triggers == () and plan.settings.source is None
    assert plan.content_hash == hashlib.sha256(VALOHAI.encode()).hexdigest()


def test_settings_land_on_the_plan(tmp_path: Path) -> None:
    sidecar = (
        "pipelines:\n  weekly: {tags: [ml], retries: 1}\n"
        "triggers:\n"
        "  - title: Mondays\n    pipeline: weekly\n    cron: '0 9 * * 1'\n"
        "    parameters: {speed: 0.9, a.parameter.epochs: 7, a.input.data: [s3://b/x.csv], a.parameter.mode: b}\n"
    )
    plan = compile_project(project(tmp_path, sidecar))
    assert plan.settings.source == str(tmp_path.resolve() / "valohai-airflow.yaml")
    assert plan.settings.pipeline("weekly").retries == 1
    (trigger,) = plan.settings.triggers_for("weekly")
    assert trigger.parameters["speed"] == 0.9
    assert plan.settings.triggers_for("other") == ()


def test_sidecar_is_part_of_the_hash_and_the_cache_key(tmp_path: Path) -> None:
    path = project(tmp_path, "triggers: []\n")
    first = compile_project(path)
    assert first.content_hash != hashlib.sha256(VALOHAI.encode()).hexdigest()
    (tmp_path / "valohai-airflow.yaml").write_text(
        "triggers:\n  - {title: T, pipeline: weekly, cron: '@daily'}\n"
    )
    second = compile_project(path)
    assert second.content_hash != first.content_hash
    assert [t.title for t in second.settings.triggers] == ["T"]
    (tmp_path / "valohai-airflow.yaml").unlink()
    assert compile_project(path).settings.triggers == ()


def test_trigger_and_settings_naming_unknown_pipelines(tmp_path: Path) -> None:
    sidecar = (
        "pipelines:\n  weeklyy: {retries: 1}\n"
        "triggers:\n  - title: T\n    pipeline: wekly\n    cron: '0 9 * * 1'\n"
    )
    assert compile_errors(project(tmp_path, sidecar)) == [
        "valohai-airflow.yaml:2: pipeline settings 'weeklyy': valohai.yaml has no pipeline 'weeklyy'",
        "valohai-airflow.yaml:4: trigger 'T': valohai.yaml has no pipeline 'wekly'",
    ]
    with pytest.raises(ValohaiSpecError) as info:
        compile_project(tmp_path / "valohai.yaml")
    assert info.value.diagnostics[1].hint == 'did you mean "weekly"?'


def test_trigger_parameters_must_be_params_of_the_dag(tmp_path: Path) -> None:
    sidecar = (
        "triggers:\n  - title: T\n    pipeline: weekly\n    cron: '0 9 * * 1'\n"
        "    parameters:\n"
        "      epochs: 3\n"  # not a key: node parameters are '<node>.parameter.<name>'
        "      a.parameter.rate: 0.3\n"  # pipeline parameter 'speed' sets it
        "      b.parameter.epochs: 3\n"  # an edge fills it
        "      a.parameter.epochs: 0\n"  # below min
        "      a.parameter.mode: c\n"  # not a choice
        "      speed: fast\n"  # the pipeline parameter takes its target's type
        "      a.input.data: 5\n"
    )
    errors = compile_errors(project(tmp_path, sidecar))
    assert [e.split(": ", 1)[1] for e in errors] == [
        "trigger 'T', parameter 'epochs': pipeline 'weekly' has no such parameter; keys are pipeline parameter "
        "names, '<node>.parameter.<name>', '<node>.input.<name>' or '<node>.variable.<NAME>'",
        "trigger 'T', parameter 'a.parameter.rate': cannot be set by a trigger: pipeline parameter 'speed' sets it",
        "trigger 'T', parameter 'b.parameter.epochs': cannot be set by a trigger: an edge fills it from an "
        "upstream node",
        "trigger 'T', parameter 'a.parameter.epochs': 0 is less than the minimum allowed (1)",
        "trigger 'T', parameter 'a.parameter.mode': c is not among the choices allowed (['a', 'b'])",
        "trigger 'T', parameter 'speed': fast is not a floating-point number",
        "trigger 'T', parameter 'a.input.data': input URLs must be a string or a list of strings, got 5",
    ]


def test_trigger_reuse_keys_name_a_run_and_nodes_of_the_pipeline(tmp_path: Path) -> None:
    sidecar = (
        "triggers:\n  - title: T\n    pipeline: weekly\n    cron: '0 9 * * 1'\n"
        "    parameters:\n"
        "      valohai.reuse.run: scheduled__2026-12-01\n"
        "      valohai.reuse.nodes: [a]\n"
        "      valohai.reuse.upstream_of: [c]\n"
    )
    errors = compile_errors(project(tmp_path, sidecar))
    assert [e.split(": ", 1)[1] for e in errors] == [
        "trigger 'T', parameter 'valohai.reuse.upstream_of': pipeline 'weekly' has no execution or task "
        "node 'c' to reuse"
    ]
    good = sidecar.replace("[c]", "[b]").replace("run: scheduled", "run: manual")
    (weekly, _) = compile_project(project(tmp_path, good)).pipelines
    assert weekly.name == "weekly"  # compiled: no error


def test_triggers_of_one_pipeline_share_a_time_zone(tmp_path: Path) -> None:
    sidecar = (
        "triggers:\n"
        "  - {title: Mornings, pipeline: weekly, cron: '0 9 * * *', timezone: Europe/Helsinki}\n"
        "  - {title: Evenings, pipeline: weekly, cron: '0 21 * * *', timezone: UTC}\n"
        "  - {title: Paused, pipeline: weekly, cron: '0 3 * * *', timezone: Asia/Tokyo, enabled: false}\n"
        "  - {title: Other, pipeline: other, cron: '0 3 * * *', timezone: Asia/Tokyo}\n"
    )
    assert compile_errors(project(tmp_path, sidecar)) == [
        "valohai-airflow.yaml:3: trigger 'Evenings': time zone 'UTC' differs from 'Europe/Helsinki' of trigger "
        "'Mornings'; the triggers of pipeline 'weekly' share one Airflow timetable, so they need one time zone "
        "(write the cron in that zone)"
    ]


def test_errors_of_both_files_are_reported_together(tmp_path: Path) -> None:
    broken = VALOHAI.replace("step: train}\n    edges", "step: trian}\n    edges")
    sidecar = "triggers:\n  - {title: T, pipeline: nope, cron: '0 25 * * *'}\n"
    errors = compile_errors(project(tmp_path, sidecar, broken))
    assert any(e.startswith("valohai.yaml:") and "trian" in e for e in errors), errors
    assert any(e.startswith("valohai-airflow.yaml:2:") and "not a valid cron" in e for e in errors), errors
    sidecar = "triggers:\n  - {title: T, pipeline: nope, cron: '0 9 * * *'}\n"
    errors = compile_errors(project(tmp_path, sidecar, broken))
    assert any(e.startswith("valohai.yaml:") and "trian" in e for e in errors), errors
    assert "valohai-airflow.yaml:2: trigger 'T': valohai.yaml has no pipeline 'nope'" in errors


def test_broken_valohai_yaml_and_broken_sidecar_yaml(tmp_path: Path) -> None:
    errors = compile_errors(project(tmp_path, "triggers: [\n", "- step: [\n"))
    assert [e.split(":")[0] for e in errors] == ["valohai.yaml", "valohai-airflow.yaml"]


DEPLOYING = (
    VALOHAI
    + """\
- endpoint:
    name: predict
    image: python:3.11
    wsgi: app:application
- endpoint:
    name: batch
    image: python:3.11
    server-command: python3 serve.py
- pipeline:
    name: ship
    nodes:
      - {name: a, type: execution, step: train}
      - {name: deploy, type: deployment, deployment: digits, endpoints: [predict, batch]}
    edges: []
"""
)


def test_deployment_settings_land_on_the_plan(tmp_path: Path) -> None:
    sidecar = "deployments:\n  digits: {serve: true, publish: {predict: 18000}}\n"
    plan = compile_project(project(tmp_path, sidecar, DEPLOYING))
    assert plan.settings.deployment("digits").serve
    assert plan.settings.deployment("digits").publish == {"predict": 18000}


def test_deployment_settings_name_known_deployments_endpoints_and_distinct_ports(tmp_path: Path) -> None:
    sidecar = (
        "deployments:\n"
        "  digit: {serve: true}\n"
        "  digits:\n"
        "    serve: true\n"
        "    publish: {predikt: 18000, predict: 18001, batch: 18001}\n"
    )
    assert compile_errors(project(tmp_path, sidecar, DEPLOYING)) == [
        "valohai-airflow.yaml:2: deployment settings 'digit': no deployment node of valohai.yaml publishes "
        "a deployment 'digit'",
        "valohai-airflow.yaml:4: deployment settings 'digits': publish names endpoint 'predikt', which "
        "deployment 'digits' does not have",
        "valohai-airflow.yaml:4: deployment settings 'digits': host port 18001 of endpoint 'batch' is already "
        "published for endpoint 'predict' of deployment 'digits'; give each endpoint its own port",
    ]
    with pytest.raises(ValohaiSpecError) as info:
        compile_project(tmp_path / "valohai.yaml")
    hints = [d.hint for d in info.value.diagnostics]
    assert hints[:2] == ['did you mean "digits"?', 'did you mean "predict"?']
