"""Each node's environment variables and where they come from (plan/variables.py), from valohai.yaml
and valohai-airflow.yaml through the loader: the precedence of the levels, groups, edges, what the
trigger form offers, the sidecar's name checks, and that the plan holds no secret's value."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.model import PipelinePlan, ProjectPlan
from valohai_airflow.plan.variables import VariablePlan
from valohai_airflow.spec.diagnostics import ValohaiSpecError

VALOHAI = """\
- step:
    name: train
    image: busybox
    command: env
    environment-variables:
      - {name: LEVEL, default: yaml}
      - {name: PASSWORD, optional: false}
      - {name: OPTIONAL_NOTHING}
      - {name: VH_DOCKER_NETWORK, default: none}
    environment-variable-groups: [aws, missing-group]
- step:
    name: report
    image: busybox
    command: env
    environment-variables:
      - {name: FROM_UPSTREAM}
- pipeline:
    name: p
    nodes:
      - {name: first, type: execution, step: train}
      - {name: second, type: execution, step: train}
      - {name: last, type: execution, step: report}
    edges:
      - [first.environment-variable.LEVEL, last.environment-variable.FROM_UPSTREAM]
      - [second.environment-variable.PASSWORD, last.environment-variable.SECRET_COPY]
"""
SIDECAR = """\
variables:
  LEVEL: project
  EVERYWHERE: {value: for all}
variable_groups:
  aws:
    LEVEL: group
    AWS_SECRET_ACCESS_KEY: {connection: aws, field: password}
pipelines:
  p:
    variables:
      LEVEL: pipeline
    nodes:
      second:
        variables:
          LEVEL: node
          PASSWORD: {variable: db_password}
steps:
  train:
    variables:
      LEVEL: step
      DATABASE_URL: {connection: warehouse}
"""


def compiled(tmp_path: Path, sidecar: str = SIDECAR, valohai: str = VALOHAI) -> ProjectPlan:
    clear_cache()
    (tmp_path / "valohai.yaml").write_text(valohai)
    (tmp_path / "valohai-airflow.yaml").write_text(sidecar)
    return compile_project(tmp_path / "valohai.yaml")


def variables(pipeline: PipelinePlan, node: str) -> dict[str, VariablePlan]:
    return {v.name: v for v in pipeline.node(node).variables}


def test_each_level_replaces_the_one_below(tmp_path: Path) -> None:
    (pipeline,) = compiled(tmp_path).pipelines
    first, second = variables(pipeline, "first"), variables(pipeline, "second")
    assert (first["LEVEL"].value, first["LEVEL"].declared) == (
        "step",
        "`variables:` of step 'train' (under `steps:`) in valohai-airflow.yaml",
    )
    assert second["LEVEL"].value == "node"  # the node's own level wins over the step's
    assert first["EVERYWHERE"].value == "for all"  # project variables reach every node
    assert variables(pipeline, "last")["EVERYWHERE"].value == "for all"
    assert first["AWS_SECRET_ACCESS_KEY"].source_text == "Airflow Connection 'aws' field 'password'"
    assert first["DATABASE_URL"].source_text == "Airflow Connection 'warehouse' as a URI"
    assert (first["PASSWORD"].kind, first["PASSWORD"].required) == ("none", True)
    assert second["PASSWORD"].source_text == "Airflow Variable 'db_password'"
    assert "AWS_SECRET_ACCESS_KEY" not in variables(pipeline, "last")  # report lists no group


def test_a_group_sits_between_the_project_and_the_pipeline(tmp_path: Path) -> None:
    sidecar = "variables: {LEVEL: project}\nvariable_groups:\n  aws: {LEVEL: group}\n"
    (pipeline,) = compiled(tmp_path, sidecar).pipelines
    assert variables(pipeline, "first")["LEVEL"].value == "group"
    sidecar += "pipelines:\n  p: {variables: {LEVEL: pipeline}}\n"
    (pipeline,) = compiled(tmp_path, sidecar).pipelines
    assert variables(pipeline, "first")["LEVEL"].value == "pipeline"


def test_secrets_and_what_the_trigger_form_offers(tmp_path: Path) -> None:
    (pipeline,) = compiled(tmp_path).pipelines
    first = variables(pipeline, "first")
    offered = sorted(v.conf_key("first") for v in first.values() if v.offered)
    # PASSWORD has no source here: the form offers it (empty), so a run can give the required value
    assert offered == [
        "first.variable.EVERYWHERE",
        "first.variable.LEVEL",
        "first.variable.OPTIONAL_NOTHING",
        "first.variable.PASSWORD",
    ]
    assert first["DATABASE_URL"].secret and first["AWS_SECRET_ACCESS_KEY"].secret
    assert not first["LEVEL"].secret
    # the step's network is never the run conf's to pick
    assert not first["VH_DOCKER_NETWORK"].offered and not first["VH_DOCKER_NETWORK"].settable


def test_an_edge_copies_the_upstreams_source(tmp_path: Path) -> None:
    (pipeline,) = compiled(tmp_path).pipelines
    last = variables(pipeline, "last")
    copy = last["FROM_UPSTREAM"]
    assert (copy.value, copy.offered, copy.settable) == ("step", False, True)
    assert copy.conf_key("last") == "first.variable.LEVEL"  # the run conf sets it on the upstream
    secret = last["SECRET_COPY"]
    assert (secret.kind, secret.key, secret.secret, secret.settable) == (
        "variable",
        "db_password",
        True,
        False,
    )
    assert secret.source_text.endswith(
        "from edge second.environment-variable.PASSWORD → last.environment-variable.SECRET_COPY"
    )


def test_the_plan_holds_no_secret_value_and_pickles(tmp_path: Path) -> None:
    plan = compiled(tmp_path)
    data = pickle.dumps(plan)
    assert (
        pickle.loads(data).pipelines[0].node("second").variables == plan.pipelines[0].node("second").variables
    )
    # only keys and connection ids: the values live in Airflow
    assert b"db_password" in data and b"warehouse" in data


def test_project_variables_are_shared_between_nodes(tmp_path: Path) -> None:
    (pipeline,) = compiled(tmp_path).pipelines
    assert variables(pipeline, "first")["EVERYWHERE"] is variables(pipeline, "last")["EVERYWHERE"]


def test_an_undefined_group_is_a_warning_at_the_step(tmp_path: Path) -> None:
    plan = compiled(tmp_path)
    (warning,) = [d for d in plan.diagnostics if "missing-group" in d.message]
    assert warning.location.line == 2  # the step's
    assert "is not defined in `variable_groups:` of valohai-airflow.yaml" in warning.message


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        (
            "steps:\n  trian: {variables: {A: x}}\n",
            "valohai-airflow.yaml:2: step settings 'trian': valohai.yaml has no step 'trian' (did you mean \"train\"?)",
        ),
        (
            "pipelines:\n  p:\n    nodes:\n      frist: {variables: {A: x}}\n",
            "valohai-airflow.yaml:4: node settings 'frist': pipeline 'p' has no node 'frist' "
            '(did you mean "first"?)',
        ),
    ],
)
def test_unknown_step_and_node_names_are_errors(tmp_path: Path, sidecar: str, expected: str) -> None:
    with pytest.raises(ValohaiSpecError) as info:
        compiled(tmp_path, sidecar)
    assert [
        f"{Path(d.location.file).name}:{d.location.line}: {d.message}" + (f" ({d.hint})" if d.hint else "")
        for d in info.value.diagnostics
    ] == [expected]


def test_variables_of_a_deployment_node_are_a_warning(tmp_path: Path) -> None:
    valohai = VALOHAI.replace(
        "- pipeline:\n",
        "- endpoint:\n    name: serve\n    image: busybox\n    port: 8000\n    server-command: serve\n- pipeline:\n",
    ).replace(
        "      - {name: last, type: execution, step: report}\n",
        "      - {name: last, type: execution, step: report}\n"
        "      - {name: ship, type: deployment, deployment: d, endpoints: [serve]}\n",
    )
    sidecar = "pipelines:\n  p:\n    nodes:\n      ship: {variables: {A: x}}\n"
    plan = compiled(tmp_path, sidecar, valohai)
    (warning,) = [d for d in plan.diagnostics if "deployment node" in d.message]
    assert warning.message == (
        "node settings 'ship': a deployment node runs no step, so its `variables:` are not used"
    )
    assert plan.pipelines[0].node("ship").variables == ()
