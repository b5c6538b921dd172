"""A node's variables at task start (runtime/variables.py) with a `SecretSource` made of plain dicts:
this module tests the rules (sources, run conf, connection fields, every problem named at once, no
value in a message, redaction of log lines); the Airflow source itself is tested for real in
tests/integration/test_variables.py and tests/e2e/test_variables.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.unit.plan.test_variables import VALOHAI, compiled
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.runtime.variables import (
    NO_SECRETS,
    ResolvedVariables,
    VariableError,
    connection_field,
    resolve_variables,
)

WAREHOUSE = {
    "uri": "postgres://analyst:hunter2-long@db:5432/sales",
    "login": "analyst",
    "password": "hunter2-long",
    "host": "db",
    "port": 5432,
    "schema": "",
    "extra": '{"region": "eu", "nested": {"a": 1}}',
    "extra_dejson": {"region": "eu", "nested": {"a": 1}},
}


class Secrets:
    """Airflow's Variables and Connections as dicts (the real ones: the integration tests)."""

    def __init__(self, variables: Mapping[str, str], connections: Mapping[str, Mapping[str, Any]]) -> None:
        self.variables, self.connections = variables, connections

    def variable(self, key: str) -> str | None:
        return self.variables.get(key)

    def connection(self, conn_id: str) -> Mapping[str, Any] | None:
        return self.connections.get(conn_id)


SIDECAR = """\
variables:
  TOKEN: {variable: api_token}
  DB_URL: {connection: warehouse}
  DB_PASSWORD: {connection: warehouse, field: password}
  DB_PORT: {connection: warehouse, field: port, secret: false}
  REGION: {connection: warehouse, field: extra.region, secret: false}
  PASSWORD: {value: literal-but-secret, secret: true}
"""


def node(tmp_path: Path, name: str = "first", sidecar: str = SIDECAR) -> NodePlan:
    return compiled(tmp_path, sidecar, VALOHAI).pipelines[0].node(name)


def test_every_source_and_the_run_conf(tmp_path: Path) -> None:
    secrets = Secrets({"api_token": "tok-123456"}, {"warehouse": WAREHOUSE})
    conf = {"first.variable.LEVEL": "from-conf", "first.variable.TOKEN": "ignored: secret"}
    resolved = resolve_variables(node(tmp_path), conf, secrets)
    assert resolved.environment == {
        "TOKEN": "tok-123456",
        "DB_URL": "postgres://analyst:hunter2-long@db:5432/sales",
        "DB_PASSWORD": "hunter2-long",
        "DB_PORT": "5432",
        "REGION": "eu",
        "PASSWORD": "literal-but-secret",
        "LEVEL": "from-conf",
        "VH_DOCKER_NETWORK": "none",
    }
    assert resolved.secret_names == {"TOKEN", "DB_URL", "DB_PASSWORD", "PASSWORD"}


def test_the_run_conf_cannot_pick_the_network(tmp_path: Path) -> None:
    resolved = resolve_variables(
        node(tmp_path, sidecar=""),
        {"first.variable.VH_DOCKER_NETWORK": "host", "first.variable.PASSWORD": "x"},
        NO_SECRETS,
    )
    assert resolved.environment["VH_DOCKER_NETWORK"] == "none"


def test_every_problem_is_named_at_once_without_a_value(tmp_path: Path) -> None:
    sidecar = (
        SIDECAR
        + "  EMPTY: {connection: warehouse, field: schema}\n  NOKEY: {connection: warehouse, field: extra.nope}\n"
    )
    secrets = Secrets({}, {"warehouse": WAREHOUSE})
    with pytest.raises(VariableError) as info:
        resolve_variables(node(tmp_path, sidecar=sidecar), {}, secrets)
    text = str(info.value)
    assert (
        "node 'first': variable 'TOKEN' (Airflow Variable 'api_token', declared in `variables:` of the project "
        "in valohai-airflow.yaml): Airflow has no Variable 'api_token'" in text
    )
    assert "field 'schema' of Airflow Connection 'warehouse' is empty" in text
    assert "field 'extra.nope' of Airflow Connection 'warehouse' is empty" in text
    assert text.endswith("The container was not started")
    assert "hunter2" not in text and "literal-but-secret" not in text


def test_a_missing_connection_and_a_required_variable_without_value(tmp_path: Path) -> None:
    with pytest.raises(VariableError) as info:
        resolve_variables(node(tmp_path, sidecar=""), {}, NO_SECRETS)
    assert str(info.value) == (
        "node 'first': variable 'PASSWORD' (no source, declared in `environment-variables` of step 'train' in "
        "valohai.yaml): it has no value and valohai.yaml says `optional: false`; give it a source in "
        "`variables:` of valohai-airflow.yaml (of the project, the pipeline, the step or the node: a `value`, an "
        "Airflow `variable` or `connection`), or a value in the run conf as 'first.variable.PASSWORD'. "
        "The container was not started"
    )
    with pytest.raises(VariableError, match="Airflow has no Connection 'warehouse'"):
        resolve_variables(node(tmp_path), {"first.variable.PASSWORD": "x"}, Secrets({"api_token": "t"}, {}))


def test_a_run_conf_value_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(
        VariableError, match=re.escape("run conf 'first.variable.LEVEL' must be a string, got int")
    ):
        resolve_variables(
            node(tmp_path, sidecar=""),
            {"first.variable.LEVEL": 3, "first.variable.PASSWORD": "x"},
            NO_SECRETS,
        )


def test_an_edge_variable_follows_the_upstreams_run_conf(tmp_path: Path) -> None:
    last = node(tmp_path, "last", sidecar="")
    resolved = resolve_variables(last, {"first.variable.LEVEL": "upstream-conf"}, NO_SECRETS)
    assert resolved.environment["FROM_UPSTREAM"] == "upstream-conf"
    assert "SECRET_COPY" not in resolved.environment  # its upstream's PASSWORD has no source: optional here


def test_connection_fields() -> None:
    assert connection_field(WAREHOUSE, "") == WAREHOUSE["uri"]
    assert connection_field(WAREHOUSE, "port") == "5432"
    assert connection_field(WAREHOUSE, "extra.nested") == '{"a": 1}'
    assert connection_field(WAREHOUSE, "schema") is None
    assert connection_field({"extra_dejson": None}, "extra.x") is None


def test_log_lines_are_redacted_and_dropped_edges_leave() -> None:
    resolved = ResolvedVariables(
        {"A": "secret-a", "AB": "secret-a-longer", "P": "plain"}, frozenset({"A", "AB"})
    )
    assert resolved.redacted(['{"k": "secret-a-longer"}', "x secret-a plain"]) == [
        '{"k": "***"}',
        "x *** plain",
    ]
    assert ResolvedVariables({"P": "plain"}).redacted(["plain"]) == ["plain"]
    assert resolved.without({"A"}) == ResolvedVariables(
        {"AB": "secret-a-longer", "P": "plain"}, frozenset({"AB"})
    )
