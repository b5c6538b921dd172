"""The plan's table of value sources (plan/sources.py): for each node, where every parameter, input
and environment variable gets its value, and the one text of an edge."""

from __future__ import annotations

import pickle

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.model import EdgeKind, Origin, PipelinePlan
from valohai_airflow.runtime.parameters import resolve_parameters
from valohai_airflow.spec.pipeline import Socket, socket_text

YAML = """\
- step:
    name: make
    image: busybox
    command: make
    parameters:
      - {name: rate, type: float, default: 0.5}
    inputs:
      - {name: raw, optional: true}
    environment-variables:
      - {name: REGION, default: eu}
- step:
    name: work
    image: busybox
    command: work {parameters}
    parameters:
      - {name: plain, type: integer, default: 1}
      - {name: overridden, type: integer, default: 1}
      - {name: targeted, type: string, default: step}
      - {name: from-parameter, type: float, optional: true}
      - {name: from-metadata, type: float, optional: true}
      - {name: both, type: float, optional: true}
      - {name: varied, type: integer, default: 1}
    inputs:
      - {name: data, default: s3://bucket/default.csv, optional: true}
      - {name: merged, optional: true}
    environment-variables:
      - {name: MODE, default: fast}
      - {name: REGION}
- task:
    name: sweep
    step: work
    parameters:
      - {name: varied, style: multiple, rules: {items: [1, 2]}}
- endpoint:
    name: serve
    image: busybox
    port: 8000
    server-command: serve
    files:
      - {name: model, path: model.pb}
- pipeline:
    name: p
    parameters:
      - {name: label, targets: [run.parameter.targeted, fan.parameter.targeted], default: pipe}
      - {name: rates, targets: [fan.parameter.both], default: [0.1, 0.2]}
      - {name: also, targets: [run.parameter.both], default: 9.0}
    nodes:
      - {name: make, type: execution, step: make}
      - name: run
        type: execution
        step: work
        override:
          parameters:
            - {name: overridden, default: 5}
      - {name: fan, type: task, task: sweep}
      - {name: ship, type: deployment, deployment: d, endpoints: [serve]}
    edges:
      - [make.parameter.rate, run.parameter.from-parameter]
      - [make.metadata.loss, run.parameter.from-metadata]
      - [make.metadata.loss, run.parameter.both]
      - [make.output.*.csv, run.input.merged]
      - [make.input.*, run.input.merged]
      - [make.environment-variable.REGION, run.environment-variable.REGION]
      - [make.environment-variable.REGION, run.environment-variable.EXTRA_ONLY]
      - [make.dependency.x, fan.dependency.x]
      - [run.output.model.pb, ship.file.serve.model]
"""


@pytest.fixture(scope="module")
def plan() -> PipelinePlan:
    (pipeline,) = compile_text(YAML).pipelines
    return pipeline


def test_a_parameter_nothing_else_fills_is_the_trigger_forms(plan: PipelinePlan) -> None:
    source = plan.node("run").sources.parameter("plain")
    assert (source.origin, source.conf_key, source.offered) == (Origin.RUN_CONF, "run.parameter.plain", True)
    assert (source.pipeline_parameter, source.edges, source.blueprint) == (None, (), None)


def test_a_node_override_keeps_the_parameters_source_and_gives_its_default(plan: PipelinePlan) -> None:
    run = plan.node("run")
    assert run.step is not None
    assert [s.name for s in run.sources.parameters] == [p.name for p in run.step.parameters]
    source = run.sources.parameter("overridden")
    assert (source.origin, source.offered) == (Origin.RUN_CONF, True)
    values = resolve_parameters(run, {}, {"from-parameter": 1.0, "from-metadata": 2.0, "both": 3.0})
    assert values["overridden"] == 5


def test_a_pipeline_parameter_target(plan: PipelinePlan) -> None:
    label = plan.parameters[0]
    for node in ("run", "fan"):
        source = plan.node(node).sources.parameter("targeted")
        assert source.origin is Origin.PIPELINE_PARAMETER
        assert source.pipeline_parameter is label
        assert not source.offered
        assert source.conf_key == f"{node}.parameter.targeted"  # run time still reads it
    step = plan.node("run").step
    assert step is not None
    assert label.parameter is step.parameter("targeted")
    assert label.target_texts == ("run.parameter.targeted", "fan.parameter.targeted")


def test_a_pipeline_parameter_types_the_form_as_its_target_and_a_list_spreads(plan: PipelinePlan) -> None:
    label, rates, _ = plan.parameters
    typed = label.form_parameter()
    assert typed is not None
    assert (typed.name, typed.type, typed.multiple in (None, "none")) == ("label", "string", True)
    spread = rates.form_parameter()
    assert spread is not None
    assert (spread.name, spread.type, spread.multiple) == ("rates", "float", "separate")


def test_parameter_and_metadata_edges(plan: PipelinePlan) -> None:
    run = plan.node("run").sources
    for name, kind, text in (
        ("from-parameter", EdgeKind.PARAMETER, "make.parameter.rate → run.parameter.from-parameter"),
        ("from-metadata", EdgeKind.METADATA, "make.metadata.loss → run.parameter.from-metadata"),
    ):
        source = run.parameter(name)
        (edge,) = source.edges
        assert (source.origin, source.offered, edge.source_kind, edge.text) == (
            Origin.EDGE,
            False,
            kind,
            text,
        )


def test_an_edge_wins_over_a_pipeline_parameter_and_both_are_recorded(plan: PipelinePlan) -> None:
    source = plan.node("run").sources.parameter("both")
    assert source.origin is Origin.EDGE
    assert source.pipeline_parameter is plan.parameters[2]
    assert [e.source_text for e in source.edges] == ["make.metadata.loss"]


def test_a_blueprint_varied_parameter(plan: PipelinePlan) -> None:
    fan = plan.node("fan").sources
    varied = fan.parameter("varied")
    assert (varied.origin, varied.blueprint, varied.offered) == (Origin.BLUEPRINT, "sweep", False)
    assert fan.parameter("both").origin is Origin.PIPELINE_PARAMETER  # a list into a task node
    assert fan.parameter("plain").blueprint is None
    assert plan.node("run").sources.parameter("varied").origin is Origin.RUN_CONF  # no blueprint there


def test_run_conf_keys_decide_over_pipeline_parameters_and_edges_over_both(plan: PipelinePlan) -> None:
    run = plan.node("run")
    filled = {"from-parameter": 1.0, "from-metadata": 2.0, "both": 3.0}
    assert resolve_parameters(run, {}, filled)["targeted"] == "pipe"
    assert resolve_parameters(run, {"label": "conf"}, filled)["targeted"] == "conf"
    conf = {"label": "conf", "run.parameter.targeted": "key", "run.parameter.plain": 7}
    assert resolve_parameters(run, conf, filled)["targeted"] == "key"
    assert resolve_parameters(run, conf, filled)["plain"] == 7
    assert resolve_parameters(run, {"also": 4.0, "run.parameter.both": 5.0}, filled)["both"] == 3.0


def test_inputs_from_edges_defaults_and_the_run_conf(plan: PipelinePlan) -> None:
    run = plan.node("run").sources
    data, merged = run.inputs
    assert (data.name, data.origin, data.conf_key, data.offered, data.edges) == (
        "data",
        Origin.RUN_CONF,
        "run.input.data",
        True,
        (),
    )
    assert (merged.origin, merged.conf_key, merged.offered) == (Origin.EDGE, "run.input.merged", True)
    assert [e.text for e in merged.edges] == [  # file order: the order files are staged in
        "make.output.*.csv → run.input.merged",
        "make.input.* → run.input.merged",
    ]
    assert run.input("merged") is merged


def test_environment_variables_from_the_step_and_from_edges(plan: PipelinePlan) -> None:
    run = plan.node("run").sources
    assert [(s.name, s.origin, s.conf_key, s.offered) for s in run.environment] == [
        ("MODE", Origin.DEFAULT, "", False),
        ("REGION", Origin.EDGE, "", False),
        ("EXTRA_ONLY", Origin.EDGE, "", False),  # only an edge names it
    ]
    assert [e.source_text for e in run.environment[2].edges] == ["make.environment-variable.REGION"]


def test_every_edge_into_a_node_in_file_order_dependency_and_file_edges_too(plan: PipelinePlan) -> None:
    for node in plan.nodes:
        assert node.sources.edges == tuple(e for e in plan.edges if e.target_node == node.name)
        assert plan.edges_into(node.name) == node.sources.edges
    assert [e.target_kind for e in plan.node("fan").sources.edges] == [EdgeKind.DEPENDENCY]
    ship = plan.node("ship").sources
    assert [e.text for e in ship.edges] == ["run.output.model.pb → ship.file.serve.model"]
    assert (ship.parameters, ship.inputs, ship.environment) == ((), (), ())
    assert plan.upstreams("run") == ("make",)
    assert plan.edges_into("no such node") == ()


def test_a_node_stays_hashable_when_a_list_default_targets_it(plan: PipelinePlan) -> None:
    fan = plan.node("fan")
    assert isinstance(plan.parameters[1].default, list)
    assert fan.sources.parameter("both").pipeline_parameter is plan.parameters[1]
    assert hash(fan) == hash(plan.node("fan"))


def test_the_table_survives_pickling_and_shares_the_plans_objects(plan: PipelinePlan) -> None:
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan
    run = copy.node("run").sources
    assert run == plan.node("run").sources
    assert run.parameter("targeted").pipeline_parameter is copy.parameters[0]
    assert run.parameter("from-parameter").edges[0] is copy.edges[0]
    assert run.input("merged").edges[1] is copy.edges[4]


def test_one_text_for_sockets_edges_and_run_conf_keys() -> None:
    assert socket_text("train", "output", "model.pb") == "train.output.model.pb"
    assert str(Socket(node="a", type="outputs", key="x")) == "a.outputs.x"  # as written
    (pipeline,) = compile_text(YAML).pipelines
    edge = pipeline.edges[3]
    assert (edge.source_text, edge.target_text) == ("make.output.*.csv", "run.input.merged")
    assert edge.text == f"{edge.source_text} → {edge.target_text}"
