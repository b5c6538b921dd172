"""`variables:`, `variable_groups:`, `steps:` and node `variables:` of valohai-airflow.yaml
(spec/variables.py): the forms a variable takes, which are secret, and errors at file:line:column."""

from __future__ import annotations

import json

import jsonschema
import pytest

from valohai_airflow.spec.diagnostics import Severity
from valohai_airflow.spec.sidecar import parse_sidecar_text, sidecar_json_schema

FULL = """\
variables:
  API_URL: https://api.example.com
  TOKEN: {variable: valohai_token}
  DB_URL: {connection: warehouse}
  DB_USER: {connection: warehouse, field: login, secret: false}
  REGION: {connection: warehouse, field: extra.region}
  HIDDEN: {value: lit, secret: true, description: a literal kept out of logs}
variable_groups:
  aws:
    AWS_SECRET_ACCESS_KEY: {connection: aws_default, field: password}
steps:
  train:
    variables: {MODE: fast}
pipelines:
  p:
    variables: {LEVEL: pipeline}
    nodes:
      n:
        variables: {LEVEL: node}
"""


def errors(text: str) -> list[str]:
    result = parse_sidecar_text(text, "valohai-airflow.yaml")
    assert result.settings is None
    return [str(d) for d in result.diagnostics.items if d.severity is Severity.ERROR]


def test_every_form_parses_and_knows_whether_it_is_secret() -> None:
    result = parse_sidecar_text(FULL, "valohai-airflow.yaml")
    assert result.settings is not None, [str(d) for d in result.diagnostics.items]
    settings = result.settings
    secret = {name: spec.is_secret for name, spec in settings.variables.items()}
    assert secret == {
        "API_URL": False,
        "TOKEN": True,
        "DB_URL": True,
        "DB_USER": False,
        "REGION": True,
        "HIDDEN": True,
    }
    assert settings.variables["API_URL"].value == "https://api.example.com"
    assert settings.variables["REGION"].field == "extra.region"
    assert settings.variable_groups["aws"]["AWS_SECRET_ACCESS_KEY"].connection == "aws_default"
    assert settings.steps["train"].variables["MODE"].value == "fast"
    assert settings.pipelines["p"].nodes["n"].variables["LEVEL"].value == "node"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "variables:\n  A: {value: x, variable: y}\n",
            "valohai-airflow.yaml:2:6: error: variable 'A': needs exactly one of 'value', 'variable' (an Airflow "
            "Variable's key) or 'connection' (an Airflow Connection's id), got 'value', 'variable'",
        ),
        (
            "variables:\n  A: {}\n",
            "valohai-airflow.yaml:2:6: error: variable 'A': needs exactly one of 'value', 'variable' (an Airflow "
            "Variable's key) or 'connection' (an Airflow Connection's id), got none",
        ),
        (
            "variables:\n  A: {variable: k, field: login}\n",
            "valohai-airflow.yaml:2:6: error: variable 'A': 'field' belongs with 'connection'",
        ),
        (
            "variables:\n  PORT: 8080\n",
            "valohai-airflow.yaml:2:9: error: variable 'PORT': must be a string (quote it: '\"8080\"'), or a "
            "mapping with one of value, variable, connection",
        ),
        (
            "variable_groups:\n  aws:\n    K: {connection: c, field: pasword}\n",
            "valohai-airflow.yaml:3:31: error: variable group 'aws': 'field': 'pasword' is not a field of an "
            "Airflow Connection; use one of uri, conn_type, host, login, password, schema, port, extra or "
            "'extra.<key>'",
        ),
        (
            "variables:\n  A: {connection: c, secrit: true}\n",
            "valohai-airflow.yaml:2:22: error: variable: unknown key 'secrit' (did you mean 'secret'?) "
            "(valid keys: value, variable, connection, field, secret, description)",
        ),
        (
            "steps:\n  train:\n    variables:\n      VH_OUTPUTS_DIR: x\n",
            "valohai-airflow.yaml:4:7: error: step settings 'train': 'variables': 'VH_OUTPUTS_DIR': names starting "
            "with VH_ are Valohai's system variables, set by the runtime",
        ),
        (
            "variables:\n  1NAME: x\n",
            "valohai-airflow.yaml:2:3: error: valohai-airflow.yaml: 'variables': '1NAME' is not an environment "
            "variable name (letters, digits and _, not starting with a digit)",
        ),
    ],
)
def test_bad_variables_are_errors_at_their_line(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_the_schema_accepts_the_example_and_refuses_two_sources() -> None:
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(sidecar_json_schema())))
    assert list(validator.iter_errors(yaml.safe_load(FULL))) == []
    assert list(validator.iter_errors({"variables": {"A": {"field": "nope-field!"}}}))
