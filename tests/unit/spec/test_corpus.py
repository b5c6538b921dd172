"""valohai.yaml files at the spec layer: valid ones parse cleanly, invalid ones are rejected with a line.

The files: our shape fixtures, valohai-yaml's own examples and error/warning examples (named by their
path in its sdist), and the optional corpus (tests/support/cases.py). A corpus copy of a valohai-yaml
file is expected to do what the upstream file does.

Error examples that the spec layer cannot judge alone (they need cross-references or the effective
step after overrides) parse without spec errors here; the plan layer must reject them:

- invalid-pipeline-with-override-example: override names an input/parameter the step lacks, and a
  node references the misspelled step "secon step".
- invalid-task-blueprint-reference: task node references the non-existent task blueprint.
- pipeline-with-preset-override-without-environment: the node override sets runtime-config-preset,
  the effective step has no environment.
- endpoint-*-volume-invalid-paths, pipeline-with-null-autorestart-override: new in valohai-yaml 0.61.0's
  sdist, not checked yet (xfail in tests/unit/plan/test_corpus.py).

Deliberate differences from valohai-yaml: duplicate step names are an error here, not a warning,
because names are dict keys and silently dropping a step would compile the wrong DAG; an unknown
override field is a warning, as valohai-yaml's linter reports it, not a schema error.
"""

from __future__ import annotations

import re

import pytest

from tests.support import cases, upstream
from tests.support.cases import Case, FanOut, Files
from valohai_airflow.spec import Severity, parse_file

SPEC_INVALID = {
    "tests/error_examples/endpoint-names-invalid.yaml": r"does not match",
    "tests/error_examples/input-name-too-long.yaml": r"too long",
    "tests/error_examples/invalid-YAML-indentation.yaml": r"not valid YAML",
    "tests/error_examples/invalid-edge-parts.yaml": r"'batch2.input' must have 3 parts",
    "tests/error_examples/invalid-indentation-with-valid-YAML.yaml": r"step is empty",
    "tests/error_examples/invalid-on-error-value.yaml": r"'on-error' must be .*report-to-sentry",
    "tests/error_examples/invalid-shorthand-edge.yaml": r"malformed edge shorthand",
    "tests/error_examples/invalid-upload-store-value.yaml": r"'upload-store' .* too long",
    "tests/error_examples/step-invalid-resources.yaml": r"'resources.cpu.min' must be a number",
    "tests/error_examples/step-missing-required-properties.yaml": r"missing required key 'command'",
    "tests/error_examples/step-stop-condition.yaml": r"'stop-condition' is not a valid expression: invalid syntax",
    "tests/error_examples/step-preset-without-environment.yaml": r"missing 'environment'",
    "tests/error_examples/step-with-error-tasks.yaml": r"missing required key 'style'",
    "tests/error_examples/task-stop-condition.yaml": r"task 'no-stop': 'stop-condition' is not a valid expression",
    "tests/error_examples/wrong-edge-merge-mode.yaml": r"'edge-merge-mode' must be .*boo-boo",
    "tests/warning_examples/duplicate_step_names.yaml": r"duplicate step name 'my step'",
}

PLAN_INVALID = {
    "tests/error_examples/invalid-pipeline-with-override-example.yaml",
    "tests/error_examples/invalid-task-blueprint-reference.yaml",
    "tests/error_examples/pipeline-with-preset-override-without-environment.yaml",
    "tests/error_examples/endpoint-shared-volumes-invalid-paths.yaml",
    "tests/error_examples/endpoint-workspace-volume-invalid-paths.yaml",
    "tests/error_examples/pipeline-with-null-autorestart-override.yaml",
}

ERROR_EXAMPLES = {n for n in cases.UPSTREAM_FILES if n.startswith("tests/error_examples/")}


def _spec_invalid(case: Case) -> bool:
    return case.upstream_name in SPEC_INVALID


ALL = cases.shapes() + cases.upstream() + cases.corpus()


def test_the_lists_cover_every_error_example() -> None:
    assert (set(SPEC_INVALID) | PLAN_INVALID) - {
        "tests/warning_examples/duplicate_step_names.yaml"
    } == ERROR_EXAMPLES
    assert len(ERROR_EXAMPLES) == 21


def test_upstream_files_are_the_listed_ones(files: Files) -> None:
    """A new valohai-yaml pin with other example files must be looked at, not silently half-tested."""
    assert upstream.files(files.upstream_root) == list(cases.UPSTREAM_FILES)


def test_corpus_is_complete(corpus_dir: object) -> None:
    names = cases.corpus_files()
    assert len(names) == 87
    error_examples = {c.upstream_name for c in cases.corpus() if "__error_examples__" in c.name}
    assert error_examples <= set(SPEC_INVALID) | PLAN_INVALID
    assert len(error_examples) == 18


@pytest.mark.parametrize("case", cases.params(c for c in ALL if not _spec_invalid(c)))
def test_valid_file_parses_without_errors(files: Files, case: Case) -> None:
    result = parse_file(files.path(case))
    assert result.diagnostics.errors == []
    assert result.config is not None
    assert result.config.steps or result.config.pipelines or result.config.endpoints


@pytest.mark.parametrize("case", cases.params(c for c in ALL if _spec_invalid(c)))
def test_invalid_file_is_rejected_with_a_line(files: Files, case: Case) -> None:
    path = files.path(case)
    result = parse_file(path)
    assert result.config is None
    errors = result.diagnostics.errors
    assert errors
    for error in errors:
        assert error.location.file == str(path)
        assert error.location.line > 0
        assert error.location.column > 0
    pattern = SPEC_INVALID[str(case.upstream_name)]
    assert any(re.search(pattern, e.message) for e in errors), [str(e) for e in errors]


def test_every_error_in_step_missing_required_properties(files: Files) -> None:
    path = files.path(Case(cases.UPSTREAM, "tests/error_examples/step-missing-required-properties.yaml"))
    messages = [(e.location.line, e.message) for e in parse_file(path).diagnostics.errors]
    assert (2, "step: missing required key 'name'") in messages
    assert (2, "step: missing required key 'command'") in messages
    assert any("'image' must be a string, got True" in m for _, m in messages)
    assert any("'command' must be a string or a list of strings, got 8" in m for _, m in messages)


def test_yaml_syntax_error_points_where_valohai_yaml_does(files: Files) -> None:
    path = files.path(Case(cases.UPSTREAM, "tests/error_examples/invalid-YAML-indentation.yaml"))
    (error,) = parse_file(path).diagnostics.errors
    assert (error.location.line, error.location.column) == (3, 10)


def test_override_with_extra_field_is_a_warning(files: Files) -> None:
    path = files.path(Case(cases.UPSTREAM, "tests/warning_examples/override-with-extra-fields-warning.yaml"))
    result = parse_file(path)
    assert result.config is not None
    (warning,) = result.diagnostics.warnings
    assert warning.severity is Severity.WARNING
    assert "unknown key 'training-images'" in warning.message
    assert warning.location.line == 18


@pytest.mark.parametrize("case", cases.params(c for c in ALL if c.upstream_name in PLAN_INVALID))
def test_plan_level_errors_parse_at_spec_level(files: Files, case: Case) -> None:
    result = parse_file(files.path(case))
    assert result.diagnostics.errors == []
    assert result.config is not None


# (file, pipeline, the float parameter written like `1e-4`)
PLURAL_AND_FLOAT_STRINGS = [
    (Case(cases.SHAPES, "plural-sockets.yaml"), "fit-and-check", "lr"),
    (Case(cases.CORPUS, "valohai__NVIDIA-MONAI-Valohai__valohai.yaml"), "train_and_evaluate", "lr"),
]


@pytest.mark.parametrize(
    ("case", "pipeline_name", "parameter"),
    cases.rows(*PLURAL_AND_FLOAT_STRINGS),
)
def test_float_default_strings_become_floats(
    files: Files, case: Case, pipeline_name: str, parameter: str
) -> None:
    """YAML 1.1 reads `1e-4` as a string; the author of a `type: float` parameter meant the number."""
    config = parse_file(files.path(case)).raise_if_errors()
    values = [p.default for s in config.steps.values() for p in s.parameters if p.name == parameter]
    assert values and all(v == pytest.approx(1e-4) and isinstance(v, float) for v in values)
    pipeline = config.pipelines[pipeline_name]
    assert {e.source.type for e in pipeline.edges} == {"outputs"}
    assert all(len(p.targets) == 2 for p in pipeline.parameters)


@pytest.mark.parametrize(("case", "names"), cases.fan_out_params())
def test_fan_out_fan_in_structure(files: Files, case: Case, names: FanOut) -> None:
    config = parse_file(files.path(case)).raise_if_errors()
    three = config.pipelines[names.three]
    assert three.reuse_executions is True
    assert len(three.nodes) == 8 and len(three.edges) == 12
    assert sum(e.source.type == "input" and e.target.type == "input" for e in three.edges) == 3
    deploy = config.pipelines[names.deploy]
    node = deploy.node(names.deployment)
    assert node is not None and node.type == "deployment"
    assert node.actions[0].when == ("node-starting",) and node.actions[0].then == ("require-approval",)
    broken = config.pipelines[names.broken]
    assert any(n.override and n.override.image == names.broken_image for n in broken.nodes)
    dynamic = config.pipelines[names.dynamic]
    assert any(n.type == "task" for n in dynamic.nodes)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid-numeric-parameter-default", "parameter 'value': default zoom is not an integer"),
        ("invalid-numeric-range-parameter-default", "default 1337 is greater than the maximum allowed (100)"),
        ("invalid-string-parameter-default", "parameter 'ctime': default datetime.datetime(2020, 9, 2"),
    ],
)
def test_default_warnings_like_valohai_lint(files: Files, name: str, expected: str) -> None:
    result = parse_file(files.path(Case(cases.UPSTREAM, f"tests/warning_examples/{name}.yaml")))
    assert result.config is not None
    (warning,) = result.diagnostics.warnings
    assert expected in warning.message and warning.location.line == 7
