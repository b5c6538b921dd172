"""Models built from small valohai.yaml snippets: forms, normalisation, errors with positions."""

from __future__ import annotations

import pickle

import pytest

from valohai_airflow.spec import (
    ExecutionNode,
    Parameter,
    ParameterValueError,
    Severity,
    TaskNode,
    coerce_parameter_value,
    parse_text,
)

STEP = "- step:\n    name: train\n    image: python:3.12\n    command: python train.py {parameters}\n"


def _config(text: str):  # type: ignore[no-untyped-def]
    return parse_text(text, "t.yaml").raise_if_errors()


def _errors(text: str) -> list[str]:
    result = parse_text(text, "t.yaml")
    assert result.config is None
    return [str(e) for e in result.diagnostics.errors]


PIPELINE = (
    STEP
    + """- pipeline:
    name: p
    parameters:
      - name: lr
        target: train.parameter.lr
        default: 0.1
      - name: many
        targets: [train.parameter.a, train2.parameter.b]
    nodes:
      - name: train
        type: execution
        step: train
        on-error: retry
        edge-merge-mode: append
        override:
          image: python:3.13
          parameters: [{name: epochs}]
          inputs: [{name: data}]
        actions:
          - {when: [Node-Complete], if: "metadata.acc < 0.8", then: stop-pipeline}
      - name: train2
        type: task
        task: sweep
      - name: deploy
        type: deployment
        deployment: d
        endpoints: [e]
    edges:
      - [train.output.model.pb, deploy.file.e.model]
      - source: train.metadata.best
        target: train2.parameter.lr
        configuration: {hello: world}
"""
)


def test_pipeline_forms() -> None:
    pipeline = _config(PIPELINE).pipelines["p"]
    short, long = pipeline.edges
    assert (short.source.node, short.source.type, short.source.key) == ("train", "output", "model.pb")
    assert (short.target.node, short.target.type, short.target.key) == ("deploy", "file", "e.model")
    assert short.configuration == {}
    assert str(long.source) == "train.metadata.best" and long.configuration == {"hello": "world"}
    assert short.location.line == 33 and long.location.line == 34
    assert long.source.location.line == 34
    assert [p.targets for p in pipeline.parameters] == [
        ("train.parameter.lr",),
        ("train.parameter.a", "train2.parameter.b"),
    ]
    train, task, deploy = pipeline.nodes
    assert isinstance(train, ExecutionNode) and isinstance(task, TaskNode)
    assert (train.on_error, train.edge_merge_mode) == ("retry", "append")
    assert train.override is not None and train.override.image == "python:3.13"
    assert train.override.parameters[0].default is None
    assert train.override.inputs[0].default == ()
    action = train.actions[0]
    assert (action.when, action.if_, action.then) == (
        ("node-complete",),
        ("metadata.acc < 0.8",),
        ("stop-pipeline",),
    )
    assert (task.step, task.task, task.on_error) == (None, "sweep", "stop-all")
    assert deploy.type == "deployment" and deploy.endpoints == ("e",) and deploy.override is None


def test_models_are_frozen_and_picklable() -> None:
    config = _config(PIPELINE)
    assert pickle.loads(pickle.dumps(config)) == config
    with pytest.raises(Exception, match="frozen"):
        config.steps["train"].name = "x"  # type: ignore[misc]


def test_step_fields_and_durations() -> None:
    text = STEP + (
        "    time-limit: 1h 30m 5s\n    no-output-timeout: '90'\n"
        "    environment-variables: [{name: A, default: '1'}]\n"
        "    mounts: ['/a:/b', {source: /c, destination: /d, readonly: true, type: NFS}]\n"
        "    resources: {cpu: {min: 0.5}, devices: {nvidia.com/gpu: 1}}\n"
        "    inputs:\n      - {name: data, default: s3://b/x, keep-directories: true}\n"
        "      - {name: more, default: [a, b], keep-directories: suffix, download: on-demand}\n"
    )
    step = _config(text).steps["train"]
    assert (step.time_limit_seconds, step.no_output_timeout_seconds) == (5405, 90)
    assert step.command == ("python train.py {parameters}",)
    assert step.environment_variables[0].optional is True
    assert [(m.source, m.destination, m.readonly, m.type) for m in step.mounts] == [
        ("/a", "/b", False, None),
        ("/c", "/d", True, "nfs"),
    ]
    assert step.resources is not None and step.resources.devices == {"nvidia.com/gpu": 1}
    data, more = step.inputs
    assert (data.default, data.keep_directories, more.keep_directories, more.download) == (
        ("s3://b/x",),
        "full",
        "suffix",
        "on-demand",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1h5x", "unknown duration unit"), ("0s", "positive"), ("soon", "cannot read"), (-3, "negative")],
)
def test_bad_durations(value: object, expected: str) -> None:
    (error,) = _errors(STEP + f"    time-limit: {value!r}\n".replace("'", '"'))
    assert expected in error and "t.yaml:5:" in error


def test_parameter_normalisation() -> None:
    text = STEP + (
        "    parameters:\n"
        "      - {name: lr, type: float, default: 1e-4}\n"
        "      - {name: n, type: integer, default: '5'}\n"
        "      - {name: zoom, type: integer, default: zoom}\n"
        "      - {name: f, type: flag, default: yes, pass-true-as: --f}\n"
        "      - {name: s, multiple: separate, default: x, pass-true-as: --ignored}\n"
        "      - {name: r, multiple: none, default: 1}\n"
    )
    lr, n, zoom, f, s, r = _config(text).steps["train"].parameters
    assert lr.default == 1e-4 and isinstance(lr.default, float)
    assert n.default == 5 and zoom.default == "zoom"
    assert (f.default, f.optional, f.choices, f.pass_true_as) == (True, True, [True, False], "--f")
    assert (s.default, s.multiple, s.pass_true_as) == (["x"], "separate", None)
    assert r.multiple is None


def test_unknown_keys_are_errors_with_did_you_mean() -> None:
    (error,) = _errors(
        STEP + "    tags: [a]\n    parameters: [{name: x, tpye: integer}]\n".replace("    tags: [a]\n", "")
    )
    assert "parameter 'x': unknown key 'tpye'" in error and "did you mean 'type'" in error
    errors = _errors(STEP + "    tags: [a]\n    time_limit: 3\n")
    assert any("t.yaml:5:5" in e and "step 'train': unknown key 'tags'" in e for e in errors)
    assert any("unknown key 'time_limit'" in e and "did you mean 'time-limit'" in e for e in errors)


def test_top_level_without_parser_is_a_warning() -> None:
    result = parse_text(STEP + "- stpe: {name: x}\n", "t.yaml")
    assert result.config is not None
    (warning,) = result.diagnostics.warnings
    assert warning.severity is Severity.WARNING and "No parser for" in warning.message
    assert warning.hint == "did you mean 'step'?" and warning.location.line == 5


def test_duplicate_names() -> None:
    (error,) = _errors(STEP + STEP)
    assert "duplicate step name 'train'" in error and "t.yaml:6:" in error
    errors = _errors(
        STEP + "- pipeline:\n    name: p\n    edges: []\n    nodes:\n"
        "      - {name: a, type: execution, step: train}\n      - {name: a, type: execution, step: train}\n"
    )
    assert any("more than one node named 'a'" in e for e in errors)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("{name: a, step: train}", "node needs 'type: execution'"),
        ("{name: a, type: task, step: train, task: t}", "exactly one of 'step' or 'task'"),
        ("{name: a.b, type: execution, step: train}", "must not contain '.'"),
        ("{name: d, type: deployment, deployment: x, on-error: retry}", "'on-error' must be"),
        ("{name: d, type: deployment, deployment: x, override: {}}", "unknown key 'override'"),
    ],
)
def test_bad_nodes(node: str, expected: str) -> None:
    errors = _errors(STEP + f"- pipeline:\n    name: p\n    edges: []\n    nodes:\n      - {node}\n")
    assert any(expected in e and "t.yaml:9:" in e for e in errors), errors


def test_pipeline_needs_edges_and_parameter_not_both_targets() -> None:
    assert any(
        "missing required key 'edges'" in e
        for e in _errors(STEP + "- pipeline:\n    name: p\n    nodes: []\n")
    )
    text = (
        STEP
        + "- pipeline:\n    name: p\n    nodes: []\n    edges: []\n    parameters: [{name: x, target: a.parameter.b, targets: [c]}]\n"
    )
    assert any("either 'target' or 'targets'" in e for e in _errors(text))


def test_coerce_parameter_value() -> None:
    integer = Parameter(name="n", type="integer", min=1, max=10)
    assert coerce_parameter_value(integer, "5") == 5
    for bad, problem in [
        (5.7, "is not an integer"),
        ("", "No value supplied"),
        (11, "greater than"),
        ([1], "single"),
    ]:
        with pytest.raises(ParameterValueError, match=problem) as info:
            coerce_parameter_value(integer, bad)
        assert "'n'" in str(info.value) and repr(bad) in str(info.value)
    assert coerce_parameter_value(Parameter(name="f", type="float"), "1e-3") == 0.001
    flag = Parameter(name="f", type="flag")
    assert coerce_parameter_value(flag, 1) == 1
    with pytest.raises(ParameterValueError, match="not among the choices"):
        coerce_parameter_value(flag, "true")
    multi = Parameter(name="m", type="integer", multiple="repeat", choices=[1, 2])
    assert coerce_parameter_value(multi, 2) == [2]
    with pytest.raises(ParameterValueError, match="3 is not among"):
        coerce_parameter_value(multi, ["1", 3])


def test_task_blueprint_and_endpoint_and_deployment() -> None:
    text = STEP + (
        "- task:\n    name: sweep\n    step: train\n    type: Bayesian-TPE\n    on-child-error: stop_all_and_error\n"
        "    parameters:\n      - {name: lr, style: logspace, rules: {start: -4, end: -1, count: 4, base: 10}}\n"
        "- endpoint:\n    name: predict\n    image: python\n    wsgi: app:app\n    files: [{name: model, path: m.pb}]\n"
        "- deployment:\n    name: d\n    defaults: {target: cluster, extra: 1}\n"
    )
    config = _config(text)
    task = config.tasks["sweep"]
    assert (task.type, task.on_child_error) == ("bayesian_tpe", "stop-all-and-error")
    assert task.parameters[0].rules.as_dict() == {"start": -4, "end": -1, "count": 4, "base": 10}
    assert config.endpoints["predict"].files[0].path == "m.pb"
    deployment = config.deployments["d"]
    assert deployment.defaults is not None and deployment.defaults.target == "cluster"
