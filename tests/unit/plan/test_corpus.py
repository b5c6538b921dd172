"""The real valohai.yaml files of the shared corpus: what compiles, what is rejected and why, and that
every compiled pipeline has the nodes, edges and resolved values valohai-yaml's converter computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import valohai_yaml
from valohai_yaml.pipelines.conversion import PipelineConverter

from tests.conftest import CORPUS_DIR
from valohai_airflow.plan.model import NodeKind, ProjectPlan
from valohai_airflow.plan.project import clear_cache, compile_project
from valohai_airflow.spec.diagnostics import Diagnostic, Severity, ValohaiSpecError

ALL_FILES = sorted(p.name for p in CORPUS_DIR.glob("*.yaml"))

# valohai-yaml's own error fixtures (section E) and the valohai-utils fixture whose pipeline names
# steps that are not in the file (A31/A32): rejected, by spec or by plan.
INVALID = {name for name in ALL_FILES if "__tests__error_examples__" in name} | {
    "valohai__valohai-utils__tests__test_yaml__test4.expected.valohai.yaml",
    "valohai__valohai-utils__tests__test_yaml__test4.original.valohai.yaml",
}

# Lint-clean for valohai-yaml, but rejected by our stricter plan checks: (line, message fragment).
STRICTER = {
    # INDEX H/A24: a parameter edge from a parameter step "inference" does not have.
    "valohai__drift-detection-example__valohai.yaml": [
        (
            166,
            'edge source drift-detect.parameter.save_results: step "inference" has no parameter "save_results"',
        ),
    ],
    # valohai-yaml's syntax showcase: parameter/metadata edges name parameters no step declares.
    "valohai__valohai-yaml__examples__pipeline-example.yaml": [
        (43, 'edge source batch1.parameter.aspect-ratio: step "Batch feature extraction" has no parameter'),
        (
            45,
            'edge target train.parameter.learning_rate: step "Train model" has no parameter "learning_rate"',
        ),
        (
            70,
            'edge target train.parameter.learning_rate: step "Train model" has no parameter "learning_rate"',
        ),
    ],
    # A step from Valohai's step library ("library:" commit) that is not in this repository.
    "valohai__valohai-yaml__examples__pipeline-with-different-commit.yaml": [
        (4, 'node "preprocess": step "parquetify" does not exist (the node takes it from commit'),
    ],
}

# Rejected by the spec layer although valohai-yaml only warns (spec's decision; see its tests).
SPEC_STRICTER = {"valohai__valohai-yaml__tests__warning_examples__duplicate_step_names.yaml"}

# Section-E files whose error is below the plan layer and which spec does not report yet.
SPEC_GAPS = {
    "valohai__valohai-yaml__tests__error_examples__step-stop-condition.yaml": "stop-condition expression not checked",
    "valohai__valohai-yaml__tests__error_examples__task-stop-condition.yaml": "stop-condition expression not checked",
}

VALID = [name for name in ALL_FILES if name not in INVALID | set(STRICTER) | SPEC_STRICTER]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _reject(name: str) -> list[Diagnostic]:
    with pytest.raises(ValohaiSpecError) as caught:
        compile_project(CORPUS_DIR / name)
    return caught.value.diagnostics


def test_corpus_counts() -> None:
    """Guards the lists above against a corpus change going unnoticed."""
    assert len(ALL_FILES) == 87
    assert len(INVALID) == 20
    assert len(VALID) == 63


@pytest.mark.parametrize("name", VALID)
def test_valid_file_compiles(name: str) -> None:
    plan = compile_project(CORPUS_DIR / name)
    assert plan.content_hash
    assert all(d.severity is Severity.WARNING for d in plan.diagnostics)
    for pipeline in plan.pipelines:
        order = {node.name: i for i, node in enumerate(pipeline.nodes)}
        assert all(order[e.source_node] < order[e.target_node] for e in pipeline.edges)
        for node in pipeline.nodes:
            assert (node.step is None) == (node.kind is NodeKind.DEPLOYMENT)


def _valohai_pipelines(name: str) -> dict[str, Any]:
    config = valohai_yaml.parse((CORPUS_DIR / name).read_text())
    converter = PipelineConverter(config=config, commit_identifier="x")
    return {p.name: converter.convert_pipeline(p) for p in config.pipelines.values()}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _valohai_yaml_converts(name: str) -> bool:
    """F7 (an unknown override key) is a schema error to valohai-yaml, a warning to us."""
    try:
        _valohai_pipelines(name)
    except valohai_yaml.ValidationErrors:
        return False
    return True


PIPELINE_FILES = [
    n for n in VALID if "- pipeline:" in (CORPUS_DIR / n).read_text() and _valohai_yaml_converts(n)
]


@pytest.mark.parametrize("name", PIPELINE_FILES)
def test_pipelines_match_valohai_yaml_converter(name: str) -> None:
    """Nodes, edges (node → node), and every node's image, command, parameter values and input
    defaults after overrides, exactly as valohai-yaml's PipelineConverter sends them to Valohai."""
    plan: ProjectPlan = compile_project(CORPUS_DIR / name)
    expected = _valohai_pipelines(name)
    assert {p.name for p in plan.pipelines} == set(expected)
    for pipeline in plan.pipelines:
        converted = expected[pipeline.name]
        assert {n.name for n in pipeline.nodes} == {n["name"] for n in converted["nodes"]}
        assert {(e.source_node, e.target_node) for e in pipeline.edges} == {
            (e["source_node"], e["target_node"]) for e in converted["edges"]
        }
        assert len(pipeline.edges) == len(converted["edges"])
        for node_data in converted["nodes"]:
            node = pipeline.node(node_data["name"])
            assert node.kind.value == node_data["type"]
            if node.step is None:
                continue
            template = node_data["template"]
            assert node.step.image == template["image"]
            assert _plain(node.step.command) == _plain(template["command"]) or (
                isinstance(template["command"], str) and list(node.step.command) == [template["command"]]
            )
            variant = {k for k, v in template["parameters"].items() if isinstance(v, dict)}
            values = {p.name: _plain(p.default) for p in node.step.parameters if p.name not in variant}
            expected_values = {
                k: _plain(v) for k, v in template["parameters"].items() if not isinstance(v, dict)
            }
            assert values == _coerced(node, expected_values), node.name
            assert {i.name: list(i.default) for i in node.step.inputs} == template["inputs"], node.name
            if "environment-variables" in template:
                env = {v.name: v.default for v in node.step.environment_variables}
                assert env == template["environment-variables"], node.name
        ours = {p.name: ([f"{n}.{k}" for n, k in p.targets], _plain(p.default)) for p in pipeline.parameters}
        theirs = {
            name: (
                [
                    t.replace(".parameters.", ".parameter.", 1)
                    for t in converted_parameter["config"]["targets"]
                ],
                _plain(converted_parameter["config"].get("default")),
            )
            for name, converted_parameter in converted["parameters"].items()
        }
        assert ours == {
            n: ([t.replace(".parameter.", ".", 1) for t in ts], d) for n, (ts, d) in theirs.items()
        }


def _coerced(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    """valohai-yaml keeps YAML 1.1's string `1e-4` for a float default; spec reads it as the number
    the author meant (INDEX H10). Compare numbers as numbers."""
    out = {}
    for name, value in values.items():
        parameter = node.step.parameter(name)
        if parameter is not None and parameter.type == "float" and isinstance(value, str):
            value = float(value)
        out[name] = value
    return out


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_stricter_than_valohai_yaml(name: str) -> None:
    errors = _reject(name)
    text = [str(d) for d in errors]
    for line, fragment in STRICTER[name]:
        assert any(d.location.line == line and fragment in d.message for d in errors), (line, fragment, text)
    assert all(d.location.file.endswith(name) for d in errors)


def test_monai_plural_sockets_warn_and_compile() -> None:
    """INDEX H1: `preprocess.outputs.*.zip` edges and `train.parameters.x` pipeline parameter targets."""
    plan = compile_project(CORPUS_DIR / "valohai__NVIDIA-MONAI-Valohai__valohai.yaml")
    warnings = [d for d in plan.diagnostics if 'read as "output"' in d.message]
    assert len(warnings) == 4
    assert all(d.location.line > 0 for d in warnings)
    assert any('"parameters" read as "parameter"' in d.message for d in plan.diagnostics)
    (pipeline,) = plan.pipelines
    assert {e.source_kind.value for e in pipeline.edges} == {"output"}
    assert all(len(p.targets) == 2 for p in pipeline.parameters)


def test_tensorflow_example_compiles_every_pipeline() -> None:
    plan = compile_project(CORPUS_DIR / "valohai__tensorflow-example__valohai.yaml")
    names = [p.name for p in plan.pipelines]
    assert "three-trainings-pipeline-w-deployment-broken" in names  # H17: a bad image is a run-time failure
    three = next(p for p in plan.pipelines if p.name == "three-trainings-pipeline")
    assert three.reuse_executions
    assert three.nodes[0].name == "preprocess"
    assert three.nodes[-1].name == "find-best-model"
    deploy = next(p for p in plan.pipelines if p.name == "three-trainings-pipeline-w-deployment")
    node = deploy.node("deploy")
    assert node.kind is NodeKind.DEPLOYMENT
    assert node.endpoints == ("predict-digit",)
    assert [a.then for a in node.actions] == [("require-approval",)]
    # require-approval is documented by Valohai and implemented by us: no "not well-known" warning
    assert not any("not well-known" in d.message for d in plan.diagnostics)


def test_override_replaces_image_command_and_items_by_name() -> None:
    plan = compile_project(
        CORPUS_DIR / "valohai__valohai-yaml__examples__pipeline-with-override-example.yaml"
    )
    pipeline = next(p for p in plan.pipelines if p.name == "My overriden input pipeline")
    merged = pipeline.node("merged").step
    assert merged is not None
    assert merged.image == "merge node image"
    assert merged.command == ("merge date",)
    training_images = merged.input("training-images")
    assert training_images is not None
    assert training_images.default == ("merged node image 1", "merged node image 2")
    assert training_images.optional  # written in the override item
    assert [i.name for i in merged.inputs] == [
        "training-images",
        "training-labels",
        "training-without-default",
    ]
    assert {p.name: p.default for p in merged.parameters} == {
        "a": "merged node parameter A",
        "b": "default step parameter B",
        "c": "merged node parameter C",
    }
    overridden = pipeline.node("overridden").step
    assert overridden is not None
    assert overridden.image == "busybox"
    assert {p.name: p.default for p in overridden.parameters}["a"] == "default step parameter A"
    assert overridden.input("training-images").default == ("overridden node image",)  # type: ignore[union-attr]


def test_invalid_override_file_names_each_error_with_its_line() -> None:
    """E7: override of an unknown input and parameter, and a misspelled step, all three reported."""
    errors = _reject(
        "valohai__valohai-yaml__tests__error_examples__invalid-pipeline-with-override-example.yaml"
    )
    found = {(d.location.line, d.message, d.hint) for d in errors}
    assert (
        48,
        'pipeline "My overriden input pipeline": node "merged" override: input "training-labels-error" '
        'does not exist in step "base step"',
        'did you mean "training-labels"?',
    ) in found
    assert any(line == 53 and 'parameter "d" does not exist in step "base step"' in m for line, m, _ in found)
    assert any(
        line == 55 and 'step "secon step" does not exist' in m and h == 'did you mean "second step"?'
        for line, m, h in found
    )


def test_unknown_task_blueprint_is_rejected() -> None:
    """E9."""
    errors = _reject("valohai__valohai-yaml__tests__error_examples__invalid-task-blueprint-reference.yaml")
    assert any('task blueprint "my-non-existent-task" does not exist' in d.message for d in errors)
    assert all(d.location.line > 0 for d in errors)


def test_preset_override_without_environment_is_rejected() -> None:
    """E11: valohai-yaml lint reports it, parse()+convert do not."""
    errors = _reject(
        "valohai__valohai-yaml__tests__error_examples__pipeline-with-preset-override-without-environment.yaml"
    )
    assert any('missing "environment"' in d.message and d.location.line > 0 for d in errors)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=SPEC_GAPS[n])) if n in SPEC_GAPS else n
        for n in sorted(INVALID | SPEC_STRICTER)
    ],
)
def test_invalid_file_is_rejected_with_a_line(name: str) -> None:
    errors = _reject(name)
    assert errors
    assert all(d.severity is Severity.ERROR for d in errors)
    assert any(d.location.line > 0 for d in errors), [str(d) for d in errors]


def test_dangling_steps_of_valohai_utils_fixture() -> None:
    errors = _reject("valohai__valohai-utils__tests__test_yaml__test4.original.valohai.yaml")
    assert [d.location.line for d in errors if "does not exist" in d.message] == [51, 54]


def _example_project() -> Path:
    return Path(__file__).resolve().parents[3] / "dags" / "example" / "valohai.yaml"


def test_example_project_compiles() -> None:
    plan = compile_project(_example_project())
    assert plan.name == "example"
    assert plan.pipelines
