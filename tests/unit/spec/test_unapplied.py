"""Nothing in valohai.yaml silently ignored: each key with no effect here is a warning at its own
line and column saying what happens instead; `stop-condition` is checked as valohai-yaml checks it."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from valohai_airflow.spec import parse_text
from valohai_airflow.spec.deployment_defaults import Deployment
from valohai_airflow.spec.endpoint import Endpoint, EndpointFile
from valohai_airflow.spec.input import Input
from valohai_airflow.spec.parameter import Parameter, ParameterWidget
from valohai_airflow.spec.pipeline import (
    DeploymentNode,
    Edge,
    ExecutionNode,
    NodeAction,
    Override,
    Pipeline,
    PipelineParameter,
    TaskNode,
)
from valohai_airflow.spec.step import EnvironmentVariable, Mount, Output, ResourceRange, Step, StepResources
from valohai_airflow.spec.stop_condition import evaluate, expression_problem
from valohai_airflow.spec.task import Task, VariantParameter, VariantParameterRules
from valohai_airflow.spec.unapplied import (
    EDGE,
    ENDPOINT,
    OVERRIDE,
    PARAMETER,
    PIPELINE_PARAMETER,
    RESOURCES,
    RULES,
    STEP,
    TASK,
)

FILE = textwrap.dedent(
    """\
    - step:
        name: train
        image: busybox
        command: echo
        upload-store: my-store
        cache-volumes: [pvc]
        runtime-config-preset: fast
        environment: box
        autorestart: true
        icon: rocket
        category: training
        description: documented, so no warning
        stop-condition: loss < 0.1
        resources:
          devices: {nvidia.com/gpu: 1}
        parameters:
          - {name: lr, type: float, default: 0.1, widget: slider, category: tuning}
        inputs:
          - {name: data, download: on-demand}
          - {name: other, download: always}
    - task:
        name: sweep
        step: train
        type: bayesian_tpe
        execution-batch-size: 2
        optimization-target-metric: loss
        optimization-target-value: 0.1
        engine: optuna
        stop-condition: loss < 0.2
        reuse-children: true
        parameters:
          - {name: lr, style: multiple, rules: {items: [1, 2], numberify: true}}
    - endpoint:
        name: predict
        image: busybox
        server-command: serve
        node-selector: a=b
        tolerations: [{key: k}]
        resources: {cpu: {max: 1}}
    - pipeline:
        name: p
        parameters:
          - {name: pp, targets: [n.parameter.lr], category: c}
        nodes:
          - name: n
            type: execution
            step: train
            override:
              autorestart: false
              runtime-config-preset: slow
              environment: box
              inputs:
                - {name: data, download: on-demand}
        edges:
          - {source: n.output.x, target: n.input.data, configuration: {hello: world}}
    - deployment:
        name: d
        defaults: {target: cluster}
    """
)

EXPECTED = [
    (
        5,
        "upload-store",
        "step 'train': `upload-store` is not applied: outputs go to the project's artefact store",
    ),
    (6, "cache-volumes", "`cache-volumes` is not applied: Kubernetes cache volumes are not mounted"),
    (7, "runtime-config-preset", "`runtime-config-preset` is not applied: Valohai's runtime config presets"),
    (9, "autorestart", "`autorestart` is not applied: there are no spot instances"),
    (10, "icon", "`icon` is not applied"),
    (11, "category", "`category` is not applied"),
    (15, "devices", "step 'train', resources: `devices` is not applied: GPUs come from `gpus`"),
    (17, "widget", "parameter 'lr': `widget` is not applied"),
    (17, "category", "parameter 'lr': `category` is not applied"),
    (
        19,
        "download",
        "input 'data': `download: on-demand` is not applied: the input is fetched before the command starts",
    ),
    (25, "execution-batch-size", "task 'sweep': `execution-batch-size` is not applied"),
    (26, "optimization-target-metric", "`optimization-target-metric` is not applied"),
    (27, "optimization-target-value", "`optimization-target-value` is not applied"),
    (28, "engine", "`engine` is not applied"),
    (30, "reuse-children", "`reuse-children` is not applied"),
    (32, "numberify", "variant parameter 'lr': `numberify` is not applied"),
    (37, "node-selector", "endpoint 'predict': `node-selector` is not applied: Kubernetes scheduling"),
    (38, "tolerations", "`tolerations` is not applied"),
    (
        39,
        "resources",
        "endpoint 'predict': `resources` is not applied: the serving container gets no CPU or memory limit",
    ),
    (43, "category", "pipeline 'p', parameter 'pp': `category` is not applied"),
    (49, "autorestart", "node 'n' override: `autorestart` is not applied"),
    (50, "runtime-config-preset", "node 'n' override: `runtime-config-preset` is not applied"),
    (53, "download", "node 'n' override, input 'data': `download: on-demand` is not applied"),
    (55, "configuration", "edge: `configuration` is not applied"),
    (57, "name", "deployment 'd': Valohai's deployment defaults (the target cluster) have no meaning here"),
]


def test_every_key_without_effect_is_a_warning_at_its_line_saying_what_happens_instead() -> None:
    result = parse_text(FILE, "valohai.yaml")
    assert result.ok, result.diagnostics.errors
    found = sorted((d.location.line, d.location.column, d.message) for d in result.diagnostics.warnings)
    assert len(found) == len(EXPECTED), "\n".join(map(str, found))
    lines = FILE.splitlines()
    for (line, column, message), (want_line, key, part) in zip(found, EXPECTED, strict=True):
        want_column = lines[want_line - 1].index(key) + 1  # the key itself (an item: its first key)
        assert (line, column) == (want_line, want_column), message
        assert part in message


def test_a_file_using_only_applied_keys_has_no_warning() -> None:
    clean = FILE.split("    upload-store")[0] + "    stop-condition: loss < 0.1\n"
    assert parse_text(clean, "valohai.yaml").diagnostics.items == []


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0.5 < loss < 0.9", "Only simple comparisons are supported"),  # valohai-yaml's lint says the same
        ("loss <", "invalid syntax"),
        ("'unterminated", "unterminated string literal"),
    ],
)
def test_stop_condition_rejects_what_valohai_yaml_rejects_with_its_line(
    expression: str, problem: str
) -> None:
    text = f"- step:\n    name: s\n    image: i\n    command: c\n    stop-condition: {expression!r}\n"
    (error,) = parse_text(text, "valohai.yaml").diagnostics.errors
    assert (error.location.line, error.location.column) == (5, 21)
    assert error.message.startswith("step 's': 'stop-condition' is not a valid expression: ")
    assert problem in error.message
    assert expression_problem(expression) is not None


@pytest.mark.parametrize(
    ("expression", "metadata", "holds"),
    [
        ("stop > 1", {"stop": 2}, True),  # bare keys, as Valohai's examples write them
        ("stop > 1", {"stop": 1}, False),
        ("metadata.acc >= 0.9", {"acc": 0.95}, True),
        ("val-acc >= 0.9 and epoch > 2", {"val-acc": 0.95, "epoch": 3}, True),
        ("accuracy >= 0.99", {"loss": 0.1}, False),  # a key never printed: does not hold
        ("acc > 0.5", {"acc": "high"}, False),  # not comparable: does not hold
        ("acc > 0.5", {"acc": [1, 2]}, False),  # a list is not a value leval compares
    ],
)
def test_stop_condition_evaluates_over_the_last_metadata(
    expression: str, metadata: dict[str, object], holds: bool
) -> None:
    assert evaluate(expression, metadata)[0] is holds


def _documented_keys() -> dict[str, set[str]]:
    """item → keys, from the "Every key of valohai.yaml" table of docs/mapping.md."""
    text = (Path(__file__).parents[3] / "docs" / "mapping.md").read_text()
    table = text.split("## Every key of valohai.yaml", 1)[1].split("\n### ", 1)[0]
    keys: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if row.startswith("| ") and len(cells) == 3 and cells[0] not in ("item", "---"):
            keys.setdefault(cells[0], set()).update(re.findall(r"`([a-z-]+)`", cells[1]))
    return keys


DOCUMENTED = {
    "step": Step,
    "resources": StepResources,
    "resource": ResourceRange,
    "parameter": Parameter,
    "widget": ParameterWidget,
    "input": Input,
    "output": Output,
    "environment variable": EnvironmentVariable,
    "mount": Mount,
    "task": Task,
    "variant parameter": VariantParameter,
    "rules": VariantParameterRules,
    "pipeline": Pipeline,
    "node": (ExecutionNode, TaskNode, DeploymentNode),
    "override": Override,
    "action": NodeAction,
    "edge": Edge,
    "pipeline parameter": PipelineParameter,
    "endpoint": Endpoint,
    "endpoint file": EndpointFile,
    "deployment (top-level item)": Deployment,
}


def test_the_docs_mapping_table_says_what_happens_to_every_key() -> None:
    documented = _documented_keys()
    assert set(documented) == set(DOCUMENTED)
    for item, classes in DOCUMENTED.items():
        keys = {k for cls in (classes if isinstance(classes, tuple) else (classes,)) for k in cls.yaml_keys()}
        assert keys <= documented[item], (
            f"{item}: {sorted(keys - documented[item])} missing in docs/mapping.md"
        )
    for table in (STEP, RESOURCES, PARAMETER, TASK, RULES, ENDPOINT, OVERRIDE, PIPELINE_PARAMETER, EDGE):
        assert all(any(key in keys for keys in documented.values()) for key in table)
