"""The real valohai.yaml corpus: valid files parse cleanly, invalid ones are rejected with a line.

Section E files that the spec layer cannot judge alone (they need cross-references or the
effective step after overrides) parse without spec errors here; the plan layer must reject them:

- E7  invalid-pipeline-with-override-example: override names an input/parameter the step lacks, and a
      node references the misspelled step "secon step".
- E9  invalid-task-blueprint-reference: task node references the non-existent task blueprint.
- E11 pipeline-with-preset-override-without-environment: the node override sets runtime-config-preset,
      the effective step has no environment.
- E15 step-stop-condition, E17 task-stop-condition: stop-condition is not a valid expression.
- A31/A32 (valohai-utils test4 expected/original): pipeline nodes reference steps not in the file.

Deliberate differences from valohai-yaml: F1 (duplicate step names) is an error here, not a warning,
because names are dict keys and silently dropping a step would compile the wrong DAG; F7 (unknown
override field) is a warning, as valohai-yaml's linter reports it, not a schema error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS_DIR
from valohai_airflow.spec import Severity, parse_file

CORPUS_FILES = sorted(p.name for p in CORPUS_DIR.glob("*.yaml"))

SPEC_INVALID = {
    "valohai__valohai-yaml__tests__error_examples__endpoint-names-invalid.yaml": r"does not match",
    "valohai__valohai-yaml__tests__error_examples__input-name-too-long.yaml": r"too long",
    "valohai__valohai-yaml__tests__error_examples__invalid-YAML-indentation.yaml": r"not valid YAML",
    "valohai__valohai-yaml__tests__error_examples__invalid-edge-parts.yaml": r"'batch2.input' must have 3 parts",
    "valohai__valohai-yaml__tests__error_examples__invalid-indentation-with-valid-YAML.yaml": r"step is empty",
    "valohai__valohai-yaml__tests__error_examples__invalid-on-error-value.yaml": r"'on-error' must be .*report-to-sentry",
    "valohai__valohai-yaml__tests__error_examples__invalid-shorthand-edge.yaml": r"malformed edge shorthand",
    "valohai__valohai-yaml__tests__error_examples__invalid-upload-store-value.yaml": r"'upload-store' .* too long",
    "valohai__valohai-yaml__tests__error_examples__step-invalid-resources.yaml": r"'resources.cpu.min' must be a number",
    "valohai__valohai-yaml__tests__error_examples__step-missing-required-properties.yaml": r"missing required key 'command'",
    "valohai__valohai-yaml__tests__error_examples__step-preset-without-environment.yaml": r"missing 'environment'",
    "valohai__valohai-yaml__tests__error_examples__step-with-error-tasks.yaml": r"missing required key 'style'",
    "valohai__valohai-yaml__tests__error_examples__wrong-edge-merge-mode.yaml": r"'edge-merge-mode' must be .*boo-boo",
    "valohai__valohai-yaml__tests__warning_examples__duplicate_step_names.yaml": r"duplicate step name 'my step'",
}

PLAN_INVALID = {
    "valohai__valohai-yaml__tests__error_examples__invalid-pipeline-with-override-example.yaml",
    "valohai__valohai-yaml__tests__error_examples__invalid-task-blueprint-reference.yaml",
    "valohai__valohai-yaml__tests__error_examples__pipeline-with-preset-override-without-environment.yaml",
    "valohai__valohai-yaml__tests__error_examples__step-stop-condition.yaml",
    "valohai__valohai-yaml__tests__error_examples__task-stop-condition.yaml",
}

VALID = [name for name in CORPUS_FILES if name not in SPEC_INVALID]


def test_corpus_is_complete(corpus_dir: Path) -> None:
    names = sorted(p.name for p in corpus_dir.glob("*.yaml"))
    assert len(names) == 87
    error_examples = {n for n in names if "__error_examples__" in n}
    assert error_examples <= set(SPEC_INVALID) | PLAN_INVALID
    assert len(error_examples) == 18


@pytest.mark.parametrize("name", VALID)
def test_valid_file_parses_without_errors(corpus_dir: Path, name: str) -> None:
    result = parse_file(corpus_dir / name)
    assert result.diagnostics.errors == []
    assert result.config is not None
    assert result.config.steps or result.config.pipelines or result.config.endpoints


@pytest.mark.parametrize("name", sorted(SPEC_INVALID))
def test_invalid_file_is_rejected_with_a_line(corpus_dir: Path, name: str) -> None:
    result = parse_file(corpus_dir / name)
    assert result.config is None
    errors = result.diagnostics.errors
    assert errors
    for error in errors:
        assert error.location.file == str(corpus_dir / name)
        assert error.location.line > 0
        assert error.location.column > 0
    assert any(re.search(SPEC_INVALID[name], e.message) for e in errors), [str(e) for e in errors]


def test_every_error_in_step_missing_required_properties(corpus_dir: Path) -> None:
    name = "valohai__valohai-yaml__tests__error_examples__step-missing-required-properties.yaml"
    messages = [(e.location.line, e.message) for e in parse_file(corpus_dir / name).diagnostics.errors]
    assert (2, "step: missing required key 'name'") in messages
    assert (2, "step: missing required key 'command'") in messages
    assert any("'image' must be a string, got True" in m for _, m in messages)
    assert any("'command' must be a string or a list of strings, got 8" in m for _, m in messages)


def test_yaml_syntax_error_points_where_valohai_yaml_does(corpus_dir: Path) -> None:
    name = "valohai__valohai-yaml__tests__error_examples__invalid-YAML-indentation.yaml"
    (error,) = parse_file(corpus_dir / name).diagnostics.errors
    assert (error.location.line, error.location.column) == (3, 10)


def test_override_with_extra_field_is_a_warning(corpus_dir: Path) -> None:
    name = "valohai__valohai-yaml__tests__warning_examples__override-with-extra-fields-warning.yaml"
    result = parse_file(corpus_dir / name)
    assert result.config is not None
    (warning,) = result.diagnostics.warnings
    assert warning.severity is Severity.WARNING
    assert "unknown key 'training-images'" in warning.message
    assert warning.location.line == 18


@pytest.mark.parametrize("name", sorted(PLAN_INVALID))
def test_plan_level_errors_parse_at_spec_level(corpus_dir: Path, name: str) -> None:
    result = parse_file(corpus_dir / name)
    assert result.diagnostics.errors == []
    assert result.config is not None


def test_monai_float_default_strings_become_floats(corpus_dir: Path) -> None:
    config = parse_file(corpus_dir / "valohai__NVIDIA-MONAI-Valohai__valohai.yaml").raise_if_errors()
    lrs = [p.default for s in config.steps.values() for p in s.parameters if p.name == "lr"]
    assert lrs and all(lr == pytest.approx(1e-4) and isinstance(lr, float) for lr in lrs)
    pipeline = config.pipelines["train_and_evaluate"]
    assert {e.source.type for e in pipeline.edges} == {"outputs"}
    assert all(len(p.targets) == 2 for p in pipeline.parameters)


def test_tensorflow_example_structure(corpus_dir: Path) -> None:
    config = parse_file(corpus_dir / "valohai__tensorflow-example__valohai.yaml").raise_if_errors()
    three = config.pipelines["three-trainings-pipeline"]
    assert three.reuse_executions is True
    assert len(three.nodes) == 8 and len(three.edges) == 12
    deploy = config.pipelines["three-trainings-pipeline-w-deployment"]
    node = deploy.node("deploy")
    assert node is not None and node.type == "deployment"
    assert node.actions[0].when == ("node-starting",) and node.actions[0].then == ("require-approval",)
    broken = config.pipelines["three-trainings-pipeline-w-deployment-broken"]
    assert any(n.override and n.override.image == "python/python:3.12.0b1-slim-buster" for n in broken.nodes)
    dynamic = config.pipelines["three-trainings-pipeline-dynamic"]
    assert any(n.type == "task" for n in dynamic.nodes)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid-numeric-parameter-default", "parameter 'value': default zoom is not an integer"),
        ("invalid-numeric-range-parameter-default", "default 1337 is greater than the maximum allowed (100)"),
        ("invalid-string-parameter-default", "parameter 'ctime': default datetime.datetime(2020, 9, 2"),
    ],
)
def test_default_warnings_like_valohai_lint(corpus_dir: Path, name: str, expected: str) -> None:
    result = parse_file(corpus_dir / f"valohai__valohai-yaml__tests__warning_examples__{name}.yaml")
    assert result.config is not None
    (warning,) = result.diagnostics.warnings
    assert expected in warning.message and warning.location.line == 7
