"""valohai-airflow.yaml: parsing, defaults, errors with file:line:column, and the shipped JSON Schema."""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import pytest

import valohai_airflow
from valohai_airflow.spec.diagnostics import Severity
from valohai_airflow.spec.sidecar import (
    ProjectSettings,
    default_settings,
    parse_sidecar_file,
    parse_sidecar_text,
    sidecar_json_schema,
    sidecar_json_schema_text,
)

SHIPPED = Path(valohai_airflow.__file__).parent / "schemas" / "valohai-airflow.schema.json"

FULL = """\
pipelines:
  three-trainings:
    tags: [ml, weekly]
    retries: 2
    retry_delay_seconds: 30
    max_active_runs: 1
    max_active_tasks: 4
triggers:
  - title: Weekly retraining
    pipeline: three-trainings
    cron: "0 9 * * 1"
  - title: Nightly in Helsinki
    pipeline: three-trainings
    cron: "@daily"
    timezone: Europe/Helsinki
    parameters:
      train.parameter.epochs: 5
    enabled: false
    catchup: true
    start_date: 2026-01-05
on_error_retry:
  retries: 5
  delay_seconds: 10
  backoff: fixed
approval:
  timeout_seconds: 600
deployments:
  digits:
    serve: true
    health_path: /healthz
    health_timeout_seconds: 30
    health_interval_seconds: 1
    publish: {predict: 18000}
"""


def errors(text: str) -> list[str]:
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is None
    return [str(d) for d in result.diagnostics.items if d.severity is Severity.ERROR]


def test_full_file_parses_into_typed_settings() -> None:
    result = parse_sidecar_text(FULL, "s.yaml")
    assert result.diagnostics.items == []
    settings = result.settings
    assert settings is not None and settings.source == "s.yaml"
    pipeline = settings.pipeline("three-trainings")
    assert pipeline.tags == ("ml", "weekly") and pipeline.retries == 2 and pipeline.max_active_runs == 1
    weekly, nightly = settings.triggers
    assert (weekly.title, weekly.cron, weekly.timezone, weekly.parameters) == (
        "Weekly retraining",
        "0 9 * * 1",
        "UTC",
        {},
    )
    assert weekly.enabled and not weekly.catchup
    assert nightly.expression == "0 0 * * *" and nightly.start_date == date(2026, 1, 5)
    assert nightly.parameters == {"train.parameter.epochs": 5}
    assert settings.triggers_for("three-trainings") == (weekly,)  # the disabled one is left out
    assert (settings.on_error_retry.retries, settings.on_error_retry.backoff) == (5, "fixed")
    assert settings.approval.timeout_seconds == 600
    digits = settings.deployment("digits")
    assert digits.serve and digits.health_path == "/healthz" and digits.health_timeout_seconds == 30
    assert (digits.health_interval_seconds, digits.publish) == (1, {"predict": 18000})


def test_defaults_without_a_file_or_with_an_empty_one() -> None:
    default = ProjectSettings()
    assert default.triggers == () and default.pipeline("anything").retries is None
    assert (default.on_error_retry.retries, default.on_error_retry.delay_seconds) == (3, 60)
    assert default.on_error_retry.backoff == "exponential"
    assert default.approval.timeout_seconds == 86400
    unnamed = default.deployment("anything")
    assert not unnamed.serve and unnamed.publish == {}  # a deployment node only publishes by default
    assert (unnamed.health_path, unnamed.health_timeout_seconds, unnamed.health_interval_seconds) == (
        "/",
        60,
        2,
    )
    for text in ("", "   \n", "# only a comment\n"):
        result = parse_sidecar_text(text, "s.yaml")
        assert result.settings is not None and result.settings.triggers == ()


def test_settings_are_frozen_and_picklable() -> None:
    import pickle

    settings = parse_sidecar_text(FULL, "s.yaml").settings
    assert settings is not None
    assert pickle.loads(pickle.dumps(settings)) == settings
    with pytest.raises(Exception, match="frozen"):
        settings.triggers[0].cron = "* * * * *"  # type: ignore[misc]


def test_unknown_keys_have_lines_and_did_you_mean() -> None:
    text = "pipelines:\n  p:\n    retris: 2\ntrigers: []\non_error_retry:\n  delay: 5\n"
    assert errors(text) == [
        "valohai-airflow.yaml:3:5: error: pipeline settings: unknown key 'retris' (did you mean 'retries'?) "
        "(valid keys: tags, retries, retry_delay_seconds, max_active_runs, max_active_tasks, description, finished_event, variables, nodes)",
        "valohai-airflow.yaml:4:1: error: valohai-airflow.yaml: unknown key 'trigers' (did you mean 'triggers'?) "
        "(valid keys: pipelines, triggers, on_error_retry, approval, deployments, environments, network, "
        "allow_vh_docker_network, mounts, variables, variable_groups, steps, step_dags, task_dags)",
        "valohai-airflow.yaml:6:3: error: on_error_retry: unknown key 'delay' "
        "(valid keys: retries, delay_seconds, backoff, max_delay_seconds)",
    ]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 9 * * 1", "'cron': '61 9 * * 1' is not a valid cron expression"),
        ("0 9 * *", "'cron': '0 9 * *' has 4 fields; a cron has five"),
        ("0 0 9 * * 1", "'cron': '0 0 9 * * 1' has 6 fields; a cron has five"),
        ("@weekli", "'cron': '@weekli' is not a cron preset (did you mean '@weekly'?)"),
        ("@once", "'cron': '@once' is not a cron preset"),
        ("every monday", "'cron': 'every monday' has 2 fields"),
    ],
)
def test_bad_cron_is_an_error_at_the_cron_value(cron: str, message: str) -> None:
    text = f'triggers:\n  - title: T\n    pipeline: p\n    cron: "{cron}"\n'
    (error,) = errors(text)
    assert error.startswith(f"valohai-airflow.yaml:4:11: error: trigger 'T': {message}"), error


@pytest.mark.parametrize(
    "cron", ["0 9 * * 1", "*/15 8-18 * * 1-5", "0 0 1 */3 *", "@weekly", "@hourly", "0 9 * * MON"]
)
def test_good_crons(cron: str) -> None:
    result = parse_sidecar_text(f'triggers:\n  - {{title: T, pipeline: p, cron: "{cron}"}}\n', "s.yaml")
    assert result.diagnostics.items == [], result.diagnostics.items


def test_unknown_time_zone_with_a_suggestion() -> None:
    text = "triggers:\n  - title: T\n    pipeline: p\n    cron: '0 9 * * 1'\n    timezone: Europe/Helsnki\n"
    assert errors(text) == [
        "valohai-airflow.yaml:5:15: error: trigger 'T': 'timezone': unknown time zone 'Europe/Helsnki' "
        "(did you mean 'Europe/Helsinki'?); use an IANA name like 'UTC' or 'Europe/Helsinki'"
    ]


def test_type_and_range_errors_name_the_trigger_or_pipeline() -> None:
    text = (
        "pipelines:\n  p:\n    max_active_runs: 0\n    tags: ml\n"
        "triggers:\n  - pipeline: p\n    cron: '0 9 * * 1'\n    enabled: maybe\n"
        "  - title: 5\n    pipeline: p\n    cron: '0 9 * * 1'\n    parameters: [1]\n"
        "on_error_retry:\n  backoff: linear\n  retries: -1\n"
        "approval:\n  timeout_seconds: 0\n"
    )
    assert errors(text) == [
        "valohai-airflow.yaml:3:22: error: pipeline settings 'p': 'max_active_runs' must be at least 1, got 0",
        "valohai-airflow.yaml:4:11: error: pipeline settings 'p': 'tags' must be a list of strings, got 'ml'",
        "valohai-airflow.yaml:6:5: error: trigger #1: missing required key 'title'",
        "valohai-airflow.yaml:8:14: error: trigger #1: 'enabled' must be true or false, got 'maybe'",
        "valohai-airflow.yaml:9:12: error: trigger #2: 'title' must be a string, got 5",
        "valohai-airflow.yaml:12:17: error: trigger #2: 'parameters' must be a mapping, got [1]",
        "valohai-airflow.yaml:14:12: error: on_error_retry: 'backoff' must be 'exponential' or 'fixed', got 'linear'",
        "valohai-airflow.yaml:15:12: error: on_error_retry: 'retries' must be at least 0, got -1",
        "valohai-airflow.yaml:17:20: error: approval: 'timeout_seconds' must be more than 0, got 0",
    ]


def test_every_number_is_finite_and_bounded_with_its_line() -> None:
    """.inf, .nan, negative and absurd delays, retries and limits are errors at the value (before,
    `.inf` raised OverflowError while the DAG was built, without a line)."""
    text = (
        "pipelines:\n  p:\n    retry_delay_seconds: .inf\n    retries: 1000\n    max_active_tasks: 100000\n"
        "on_error_retry:\n  delay_seconds: .nan\n  max_delay_seconds: -1\n  retries: -2\n"
        "approval:\n  timeout_seconds: -.inf\n"
        "deployments:\n  d:\n    health_timeout_seconds: .inf\n    health_interval_seconds: 1.0e+300\n"
        "environments:\n  big:\n    cpus: .nan\n    memory: .inf\n    shm_size: 2000000t\n"
        "    gpus: 1000\n    pool_slots: 0\n  huge:\n    memory: 99999999g\n"
    )
    assert errors(text) == [
        "valohai-airflow.yaml:3:26: error: pipeline settings 'p': 'retry_delay_seconds': must be a finite number, got inf",
        "valohai-airflow.yaml:4:14: error: pipeline settings 'p': 'retries' must be at most 100, got 1000",
        "valohai-airflow.yaml:5:23: error: pipeline settings 'p': 'max_active_tasks' must be at most 10000, got 100000",
        "valohai-airflow.yaml:7:18: error: on_error_retry: 'delay_seconds': must be a finite number, got nan",
        "valohai-airflow.yaml:8:22: error: on_error_retry: 'max_delay_seconds' must be at least 0, got -1",
        "valohai-airflow.yaml:9:12: error: on_error_retry: 'retries' must be at least 0, got -2",
        "valohai-airflow.yaml:11:20: error: approval: 'timeout_seconds': must be a finite number, got -inf",
        "valohai-airflow.yaml:14:29: error: deployment settings 'd': 'health_timeout_seconds': must be a finite number, got inf",
        "valohai-airflow.yaml:15:30: error: deployment settings 'd': 'health_interval_seconds' must be at most 86400, got 1e+300",
        "valohai-airflow.yaml:18:11: error: environment settings 'big': 'cpus': must be a finite number, got nan",
        "valohai-airflow.yaml:19:13: error: environment settings 'big': 'memory': must be a finite size like '16g', got inf",
        "valohai-airflow.yaml:20:15: error: environment settings 'big': 'shm_size': '2000000t' is not a size; "
        "write a number with b, k, m or g (powers of 1024), like '16g' or '512m'",
        "valohai-airflow.yaml:21:11: error: environment settings 'big': 'gpus': must be a whole number of GPUs "
        "(1 to 64) or 'all', got 1000",
        "valohai-airflow.yaml:22:17: error: environment settings 'big': 'pool_slots' must be at least 1, got 0",
        "valohai-airflow.yaml:24:13: error: environment settings 'huge': 'memory': '99999999g' is more than 1 PiB; "
        "write a size like '16g'",
    ]


def test_not_a_mapping_and_not_yaml() -> None:
    assert errors("- a\n- b\n") == [
        "valohai-airflow.yaml:1:1: error: the top level of valohai-airflow.yaml must be a mapping with keys "
        "pipelines, triggers, on_error_retry, approval, deployments, environments, network, allow_vh_docker_network, mounts, variables, variable_groups, steps, step_dags, task_dags"
    ]
    (error,) = errors("triggers: [\n")
    assert error.startswith("valohai-airflow.yaml:2:1: error: not valid YAML")
    (error,) = errors("approval: {}\napproval: {}\n")
    assert "duplicate key 'approval'" in error and error.startswith("valohai-airflow.yaml:2:1")


def test_unreadable_file_is_a_diagnostic(tmp_path: Path) -> None:
    result = parse_sidecar_file(tmp_path / "missing.yaml")
    assert result.settings is None
    assert "cannot read: No such file" in str(result.diagnostics.errors[0])


def test_a_fifo_sidecar_is_a_diagnostic_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "valohai-airflow.yaml"
    os.mkfifo(fifo)
    result = parse_sidecar_file(fifo)
    assert result.settings is None
    assert "is a FIFO (named pipe), not a regular file" in str(result.diagnostics.errors[0])


def test_trigger_fires_at_reads_the_cron_in_its_time_zone() -> None:
    text = "triggers:\n  - {title: T, pipeline: p, cron: '0 9 * * 1', timezone: Europe/Helsinki}\n"
    settings = parse_sidecar_text(text, "s.yaml").settings
    assert settings is not None
    (trigger,) = settings.triggers
    assert trigger.fires_at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # 09:00 EET (UTC+2)
    assert not trigger.fires_at(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    assert trigger.fires_at(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))  # 09:00 EEST (UTC+3)


def test_shipped_schema_is_up_to_date() -> None:
    """Regenerate with `python scripts/sidecar_schema.py` when this fails."""
    assert SHIPPED.read_text(encoding="utf-8") == sidecar_json_schema_text()


def test_schema_accepts_the_full_example_and_refuses_what_the_models_refuse() -> None:
    import yaml

    schema = sidecar_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    full = yaml.safe_load(FULL)
    full["triggers"][1]["start_date"] = full["triggers"][1]["start_date"].isoformat()
    assert list(validator.iter_errors(full)) == []
    for bad in (
        {"trigers": []},
        {"triggers": [{"pipeline": "p", "cron": "0 9 * * 1"}]},
        {"on_error_retry": {"backoff": "linear"}},
        {"pipelines": {"p": {"max_active_runs": 0}}},
        {"approval": {"timeout_seconds": 0}},
        {"deployments": {"d": {"serv": True}}},
        {"deployments": {"d": {"publish": {"e": 70000}}}},
        {"deployments": {"d": {"health_path": "healthz"}}},
        {"deployments": {"d": {"health_timeout_seconds": 0}}},
        {"pipelines": {"p": {"retries": 1000}}},
        {"on_error_retry": {"delay_seconds": 10**9}},
        {"environments": {"e": {"gpus": 1000}}},
    ):
        assert list(validator.iter_errors(bad)), bad
    assert "location" not in json.dumps(schema) and "source" not in schema["properties"]


def test_deployment_settings_errors_have_lines_and_did_you_mean() -> None:
    text = (
        "deployments:\n"
        "  digits:\n"
        "    serv: true\n"
        "    health_path: healthz\n"
        "    health_timeout_seconds: 0\n"
        "    publish: {predict: 70000, other: '8000'}\n"
        "  other: {serve: yes please}\n"
    )
    assert errors(text) == [
        "valohai-airflow.yaml:3:5: error: deployment settings: unknown key 'serv' (did you mean 'serve'?) "
        "(valid keys: serve, health_path, health_timeout_seconds, health_interval_seconds, publish)",
        "valohai-airflow.yaml:4:18: error: deployment settings 'digits': 'health_path': 'healthz' is not a URL "
        "path; write one that starts with '/' and has no spaces, like '/healthz'",
        "valohai-airflow.yaml:5:29: error: deployment settings 'digits': 'health_timeout_seconds' must be more "
        "than 0, got 0",
        "valohai-airflow.yaml:6:24: error: deployment settings 'digits': 'predict' must be at most 65535, got 70000",
        "valohai-airflow.yaml:6:38: error: deployment settings 'digits': 'other' must be an integer, got '8000'",
        "valohai-airflow.yaml:7:18: error: deployment settings 'other': 'serve' must be true or false, "
        "got 'yes please'",
    ]


def test_example_project_sidecar_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "dags" / "example" / "valohai-airflow.yaml"
    result = parse_sidecar_file(example)
    assert result.diagnostics.items == []
    assert result.settings is not None
    (trigger,) = result.settings.triggers_for("three-trainings")
    assert (trigger.title, trigger.cron, trigger.timezone) == ("Weekly retraining", "0 9 * * 1", "UTC")


def test_settings_pickle_as_the_shared_default_only_when_they_are_the_defaults() -> None:
    """Most projects have no sidecar: their plans unpickle one shared default, not four models each."""
    assert (
        pickle.loads(pickle.dumps(ProjectSettings(), protocol=pickle.HIGHEST_PROTOCOL)) is default_settings()
    )
    for text in ("step_dags: false\n", ""):  # chosen settings; an empty sidecar (its source is known)
        settings = parse_sidecar_text(text, "proj/valohai-airflow.yaml").settings
        assert settings is not None
        again = pickle.loads(pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL))
        assert again == settings and again is not default_settings()
        assert again.source == "proj/valohai-airflow.yaml"
