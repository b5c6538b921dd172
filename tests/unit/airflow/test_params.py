"""A pipeline's trigger form: the Airflow Params built from its pipeline and node parameters and inputs."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from tests.support import corpus
from tests.support.cases import Files
from tests.unit.plan.support import compile_text
from valohai_airflow.airflow.params import pipeline_params
from valohai_airflow.runtime.reuse_nodes import NODES_KEY, RUN_KEY, UPSTREAM_OF_KEY

YAML = """
- step:
    name: prepare
    image: busybox
    command: echo {parameters}
    parameters:
      - name: size
        type: integer
        default: 32
- step:
    name: train
    image: python:3.11
    command: python train.py {parameters}
    parameters:
      - name: lr
        type: float
        default: 0.5
        min: 0
        max: 1
        description: Step learning rate
      - name: decay
        type: float
        default: 1e-4
      - name: epochs
        type: integer
        default: 3
        min: 1
        max: 10
        description: How many passes over the data
      - name: optimizer
        type: string
        default: adam
        choices: [adam, sgd]
      - name: verbose
        type: flag
        default: false
      - name: tags
        type: string
        multiple: repeat
        default: [a, b]
      - name: seed
        type: integer
      - name: limit
        type: integer
        optional: true
      - name: batch
        type: integer
        default: 8
    inputs:
      - name: dataset
        default:
          - s3://bucket/a.csv
          - https://example.com/b.csv
        description: Training data
      - name: extra
        optional: true
- pipeline:
    name: Train it
    parameters:
      - name: learning_rate
        targets: [train.parameter.lr]
        default: 0.01
      - name: free
        default: hello
        description: targets nothing
    nodes:
      - name: prep
        type: execution
        step: prepare
      - name: train
        type: execution
        step: train
    edges:
      - [prep.parameter.size, train.parameter.batch]
"""


@pytest.fixture(scope="module")
def params() -> dict[str, Param]:
    (pipeline,) = compile_text(YAML).pipelines
    return pipeline_params(pipeline)


def _type(param: Param) -> Any:
    return param.schema.get("type")


def test_keys_order_and_sections(params: dict[str, Param]) -> None:
    assert list(params) == [
        "learning_rate",
        "free",
        "prep.parameter.size",
        "train.parameter.decay",
        "train.parameter.epochs",
        "train.parameter.optimizer",
        "train.parameter.verbose",
        "train.parameter.tags",
        "train.parameter.seed",
        "train.parameter.limit",
        "train.input.dataset",
        "train.input.extra",
        "valohai.reuse.run",
        "valohai.reuse.nodes",
        "valohai.reuse.upstream_of",
    ]
    assert "section" not in params["learning_rate"].schema
    assert "section" not in params["free"].schema
    for key, param in params.items():
        if "." in key:
            assert param.schema["section"] == key.split(".")[0], key


def test_filled_parameters_are_not_offered(params: dict[str, Param]) -> None:
    assert "train.parameter.lr" not in params  # the pipeline parameter learning_rate sets it
    assert "train.parameter.batch" not in params  # the edge from prep.parameter.size fills it


def test_types(params: dict[str, Param]) -> None:
    assert _type(params["prep.parameter.size"]) == "integer"
    assert _type(params["train.parameter.decay"]) == "number"
    assert _type(params["train.parameter.optimizer"]) == "string"
    assert _type(params["train.parameter.verbose"]) == "boolean"
    tags = params["train.parameter.tags"]
    assert _type(tags) == "array" and tags.schema["items"] == {"type": "string"}
    assert _type(params["train.parameter.limit"]) == ["integer", "null"]  # optional, no default


def test_pipeline_parameter_takes_its_targets_schema(params: dict[str, Param]) -> None:
    learning_rate = params["learning_rate"]
    assert learning_rate.value == 0.01
    assert learning_rate.schema["type"] == "number"
    assert (learning_rate.schema["minimum"], learning_rate.schema["maximum"]) == (0, 1)
    assert learning_rate.description == "Step learning rate"
    free = params["free"]
    assert (free.value, free.description) == ("hello", "targets nothing")
    assert "type" not in free.schema


def test_defaults_bounds_choices_descriptions(params: dict[str, Param]) -> None:
    epochs = params["train.parameter.epochs"]
    assert epochs.value == 3
    assert (epochs.schema["minimum"], epochs.schema["maximum"]) == (1, 10)
    assert epochs.description == "How many passes over the data"
    assert params["train.parameter.optimizer"].schema["enum"] == ["adam", "sgd"]
    assert params["train.parameter.optimizer"].value == "adam"
    assert params["train.parameter.verbose"].value is False
    assert params["train.parameter.tags"].value == ["a", "b"]
    assert params["train.parameter.limit"].value is None


def test_yaml_1_1_float_default_is_a_number(params: dict[str, Param]) -> None:
    """PyYAML reads `1e-4` as the string '1e-4'; the form must offer the float."""
    decay = params["train.parameter.decay"].value
    assert decay == 0.0001 and isinstance(decay, float)


def test_input_urls_are_array_params(params: dict[str, Param]) -> None:
    dataset = params["train.input.dataset"]
    assert dataset.schema["type"] == "array" and dataset.schema["items"] == {"type": "string"}
    assert dataset.value == ["s3://bucket/a.csv", "https://example.com/b.csv"]
    assert dataset.description == "Training data"
    assert params["train.input.extra"].value == []


def test_a_required_parameter_has_no_default(params: dict[str, Param]) -> None:
    seed = params["train.parameter.seed"]
    assert not seed.has_value
    with pytest.raises(ParamValidationError, match="no default"):
        seed.resolve()
    assert seed.resolve(7) == 7


def test_the_defaults_validate(params: dict[str, Param]) -> None:
    form = ParamsDict(params)
    form["train.parameter.seed"] = 42  # the one value the user must give
    resolved = form.validate()
    assert resolved["train.parameter.seed"] == 42
    assert resolved["train.parameter.decay"] == 0.0001
    assert resolved["learning_rate"] == 0.01
    assert resolved["train.parameter.limit"] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.parameter.epochs", 11),
        ("train.parameter.epochs", "3"),
        ("train.parameter.optimizer", "rmsprop"),
        ("learning_rate", 2),
        ("train.parameter.verbose", "yes"),
        ("train.input.dataset", "s3://not-a-list"),
    ],
)
def test_values_outside_the_schema_are_refused(params: dict[str, Param], key: str, value: Any) -> None:
    with pytest.raises(ParamValidationError):
        params[key].resolve(value)


def test_a_number_default_of_a_string_parameter_is_offered_as_text() -> None:
    """Untyped (string) parameters with `default: 16` are common (NeMo, yolo examples); Valohai passes
    `--batch_size=16`. The form must accept its own default, or every trigger with defaults fails."""
    (pipeline,) = compile_text(
        """
        - step:
            name: s
            image: busybox
            command: echo {parameters}
            parameters:
              - name: batch_size
                default: 16
              - name: id
                type: string
              - name: sizes
                type: string
                multiple: separate
                default: [1, 2.5]
        - pipeline:
            name: p
            parameters:
              - name: id
                targets: [n.parameter.id]
                default: 123
            nodes:
              - name: n
                type: execution
                step: s
            edges: []
        """
    ).pipelines
    resolved = ParamsDict(pipeline_params(pipeline)).validate()
    assert resolved == {"id": "123", "n.parameter.batch_size": "16", "n.parameter.sizes": ["1", "2.5"]}


# per group: the shape fixtures and valohai-yaml's files; the optional corpus
CHECKED_PIPELINES = {corpus.FIXTURES: 30, "corpus": 33}


@pytest.mark.parametrize("group", corpus.GROUPS)
def test_every_corpus_pipeline_triggers_with_its_defaults(files: Files, group: str) -> None:
    """What Airflow does on every trigger: deep-merge the (empty) conf into the Params and validate.
    Only parameters without any default (which Valohai also asks for) may be missing."""
    checked = required = 0
    for _, plan in corpus.compiled(corpus.group_paths(files, group)):
        for pipeline in plan.pipelines:
            params = pipeline_params(pipeline)
            for param in params.values():
                if param.has_value:
                    param.resolve()  # raises ParamValidationError naming the value and schema
                else:
                    required += 1
            checked += 1
    assert checked == CHECKED_PIPELINES[group] and required > 0


def test_parameters_a_task_blueprint_varies_are_not_offered() -> None:
    """The blueprint decides them (a required `id` without default would otherwise block every
    trigger); the node's other parameters stay in its section."""
    (pipeline,) = compile_text(
        """
        - step:
            name: s
            image: busybox
            command: echo {parameters}
            parameters:
              - {name: id, type: integer}
              - {name: scale, type: integer, default: 2}
        - task:
            name: sweep
            step: s
            parameters:
              - {name: id, style: multiple, rules: {items: [1, 2]}}
        - pipeline:
            name: p
            nodes:
              - {name: n, type: task, task: sweep}
            edges: []
        """
    ).pipelines
    params = pipeline_params(pipeline)
    assert list(params) == ["n.parameter.scale"]
    assert ParamsDict(params).validate() == {"n.parameter.scale": 2}


def test_the_form_offers_what_the_nodes_tables_offer() -> None:
    (pipeline,) = compile_text(YAML).pipelines
    offered = (
        [pp.name for pp in pipeline.parameters]
        + [
            s.conf_key
            for node in pipeline.nodes
            for s in (*node.sources.parameters, *node.sources.inputs)
            if s.offered
        ]
        + [RUN_KEY, NODES_KEY, UPSTREAM_OF_KEY]
    )
    hidden = [s.conf_key for node in pipeline.nodes for s in node.sources.parameters if not s.offered]
    assert list(pipeline_params(pipeline)) == offered
    assert hidden == ["train.parameter.lr", "train.parameter.batch"]


def test_non_secret_variables_are_string_params_and_secrets_are_not(tmp_path: Any) -> None:
    from tests.unit.plan.test_variables import compiled

    (pipeline,) = compiled(tmp_path).pipelines
    params = pipeline_params(pipeline)
    variables = sorted(key for key in params if key.startswith("first.variable."))
    assert variables == [
        "first.variable.EVERYWHERE",
        "first.variable.LEVEL",
        "first.variable.OPTIONAL_NOTHING",
        "first.variable.PASSWORD",
    ]
    level = params["first.variable.LEVEL"]
    assert (level.value, level.schema["type"], level.schema["section"]) == (
        "step",
        ["string", "null"],
        "first",
    )
    assert "valohai-airflow.yaml" in level.description
    assert not params["first.variable.PASSWORD"].value  # no source: empty, filled in by whoever triggers
    # secrets (Variables, Connections), the step's network and edge-filled variables have no field
    assert not any(
        name in key
        for key in params
        for name in ("DATABASE_URL", "AWS_SECRET", "VH_DOCKER_NETWORK", "FROM_UPSTREAM", "SECRET_COPY")
    )
    ParamsDict(params).validate()


def test_reuse_nodes_params_offer_the_node_names_once(params: dict[str, Param]) -> None:
    """Three Params whatever the node count: the source run and two lists of the node names."""
    assert params[RUN_KEY].resolve() is None
    nodes = params[NODES_KEY]
    assert nodes.schema["items"]["enum"] == ["prep", "train"]
    assert nodes.resolve(["train"]) == ["train"]
    with pytest.raises(ParamValidationError):
        nodes.resolve(["nope"])
    assert params[UPSTREAM_OF_KEY].resolve() == []
