"""valohai.yaml files at the plan layer: what compiles, what is rejected and why, and that every
compiled pipeline has the nodes, edges and resolved values valohai-yaml's converter computes.

The files: our shape fixtures, valohai-yaml's own examples and error/warning examples (by their path
in its sdist), and the optional corpus (tests/support/cases.py). A corpus copy of a valohai-yaml file
is expected to do what the upstream file does; the other corpus files have their own lines below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import valohai_yaml
from valohai_yaml.pipelines.conversion import PipelineConverter

from tests.support import cases
from tests.support.cases import Case, FanOut, Files
from tests.support.corpus import edges_that_act
from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.model import EdgeKind, NodeKind, ProjectPlan
from valohai_airflow.spec.diagnostics import Diagnostic, Severity, ValohaiSpecError

UPSTREAM = cases.UPSTREAM

# Rejected, by spec or by plan: valohai-yaml's error examples, and the valohai-utils fixtures of the
# corpus whose pipeline names steps that are not in the file (INDEX A31/A32).
INVALID = {n for n in cases.UPSTREAM_FILES if n.startswith("tests/error_examples/")}
INVALID_CORPUS = {
    "valohai__valohai-utils__tests__test_yaml__test4.expected.valohai.yaml",
    "valohai__valohai-utils__tests__test_yaml__test4.original.valohai.yaml",
}

# Lint-clean for valohai-yaml, but rejected by our stricter plan checks: (line, message fragment).
STRICTER = {
    # valohai-yaml's syntax showcase: parameter/metadata edges name parameters no step declares.
    "examples/pipeline-example.yaml": [
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
    # Steps from Valohai's step library or another commit ("commit:" pins) that are not in this file.
    "examples/pipeline-with-different-commit.yaml": [
        (4, 'node "preprocess": step "parquetify" does not exist (the node takes it from commit'),
    ],
    "examples/pipeline-with-autorestart-override.yaml": [
        (39, 'node "remote-node": step "remote-train" does not exist (the node takes it from commit'),
    ],
    "examples/pipeline-with-param-referring-to-different-commit.yaml": [
        (5, 'node "node_2": step "some_step" does not exist (the node takes it from commit'),
    ],
}
STRICTER_CORPUS = {
    # INDEX H/A24: a parameter edge from a parameter step "inference" does not have.
    "valohai__drift-detection-example__valohai.yaml": [
        (
            166,
            'edge source drift-detect.parameter.save_results: step "inference" has no parameter "save_results"',
        ),
    ],
}

# Rejected by the spec layer although valohai-yaml only warns (spec's decision; see its tests).
SPEC_STRICTER = {"tests/warning_examples/duplicate_step_names.yaml"}

# Error examples whose error is below the plan layer and which we do not report yet.
GAPS = {
    "tests/error_examples/endpoint-shared-volumes-invalid-paths.yaml": "endpoint shared-volumes not checked",
    "tests/error_examples/endpoint-workspace-volume-invalid-paths.yaml": "endpoint workspace-volume not checked",
    "tests/error_examples/pipeline-with-null-autorestart-override.yaml": "override `autorestart: null` not rejected",
}


def _invalid(case: Case) -> bool:
    return case.upstream_name in INVALID | SPEC_STRICTER or case.name in INVALID_CORPUS


def _stricter(case: Case) -> list[tuple[int, str]] | None:
    return STRICTER.get(str(case.upstream_name)) or STRICTER_CORPUS.get(case.name)


ALL = cases.shapes() + cases.upstream() + cases.corpus()
VALID = [c for c in ALL if not _invalid(c) and _stricter(c) is None]

# The valid upstream files with pipelines that valohai-yaml's converter takes (checked below).
UPSTREAM_PIPELINES = [
    "examples/edge-merge-mode.yaml",
    "examples/pipeline-deployment-edge-example.yaml",
    "examples/pipeline-edge-types-example.yaml",
    "examples/pipeline-execution-retry-example.yaml",
    "examples/pipeline-with-automatic-deployment-creation.yaml",
    "examples/pipeline-with-override-example.yaml",
    "examples/pipeline-with-override-only-preset.yaml",
    "examples/pipeline-with-parameters-example.yaml",
    "examples/pipeline-with-runtime-config-preset.yaml",
    "examples/pipeline-with-task-blueprint-example.yaml",
    "examples/pipeline-with-tasks-example.yaml",
    "tests/valid_examples/edge-merge-mode.yaml",
    "tests/warning_examples/targetless-pipeline-params.yaml",
]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _reject(path: Path) -> list[Diagnostic]:
    with pytest.raises(ValohaiSpecError) as caught:
        compile_project(path)
    return caught.value.diagnostics


def _has_pipelines(path: Path) -> bool:
    return "- pipeline:" in path.read_text()


def test_corpus_counts(corpus_dir: Path) -> None:
    """Guards the corpus lists above against a corpus change going unnoticed."""
    corpus = cases.corpus()
    assert len(corpus) == 87
    assert len([c for c in corpus if _invalid(c)]) == 21  # 18 error examples, test4 ×2, duplicate steps
    assert len([c for c in VALID if c.source == cases.CORPUS]) == 63


def test_upstream_counts() -> None:
    assert len(INVALID) == 21
    assert (
        len([c for c in VALID if c.source == UPSTREAM]) == 68 - 21 - len(STRICTER) - len(SPEC_STRICTER) == 42
    )


@pytest.mark.parametrize("case", cases.params(VALID))
def test_valid_file_compiles(files: Files, case: Case) -> None:
    plan = compile_project(files.path(case))
    assert plan.content_hash
    assert all(d.severity is Severity.WARNING for d in plan.diagnostics)
    for pipeline in plan.pipelines:
        order = {node.name: i for i, node in enumerate(pipeline.nodes)}
        assert all(order[e.source_node] < order[e.target_node] for e in pipeline.edges)
        for node in pipeline.nodes:
            assert (node.step is None) == (node.kind is NodeKind.DEPLOYMENT)


def _valohai_pipelines(path: Path) -> dict[str, Any]:
    config = valohai_yaml.parse(path.read_text())
    converter = PipelineConverter(config=config, commit_identifier="x")
    return {p.name: converter.convert_pipeline(p) for p in config.pipelines.values()}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _valohai_yaml_converts(path: Path) -> bool:
    """An unknown override key is a schema error to valohai-yaml, a warning to us."""
    try:
        _valohai_pipelines(path)
    except valohai_yaml.ValidationErrors:
        return False
    return True


PIPELINE_CASES = (
    cases.shapes()
    + cases.upstream(UPSTREAM_PIPELINES)
    + [
        c
        for c in VALID
        if c.source == cases.CORPUS
        and _has_pipelines(cases.CORPUS_DIR / c.name)
        and _valohai_yaml_converts(cases.CORPUS_DIR / c.name)
    ]
)


def test_upstream_pipeline_files_are_the_listed_ones(files: Files) -> None:
    """UPSTREAM_PIPELINES is written out (the list must not depend on the download): check it."""
    found = [
        c.name
        for c in VALID
        if c.source == UPSTREAM and _has_pipelines(files.path(c)) and _valohai_yaml_converts(files.path(c))
    ]
    assert found == UPSTREAM_PIPELINES


@pytest.mark.parametrize("case", cases.params(PIPELINE_CASES))
def test_pipelines_match_valohai_yaml_converter(files: Files, case: Case) -> None:
    """Nodes, edges (node → node), and every node's image, command, parameter values and input
    defaults after overrides, exactly as valohai-yaml's PipelineConverter sends them to Valohai."""
    path = files.path(case)
    plan: ProjectPlan = compile_project(path)
    expected = _valohai_pipelines(path)
    assert {p.name for p in plan.pipelines} == set(expected)
    for pipeline in plan.pipelines:
        converted = expected[pipeline.name]
        assert {n.name for n in pipeline.nodes} == {n["name"] for n in converted["nodes"]}
        edges = edges_that_act(converted)
        assert {(e.source_node, e.target_node) for e in pipeline.edges} == {
            (e["source_node"], e["target_node"]) for e in edges
        }
        assert len(pipeline.edges) == len(edges)
        for node_data in converted["nodes"]:
            node = pipeline.node(node_data["name"])
            assert node.kind.value == node_data["type"]
            if node.step is None:
                continue
            template = node_data["template"]
            if "commit" in template:  # Valohai reads the step at that commit; we run the dags-folder copy
                assert node.step.name == template["step"]
                continue
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


STRICTER_CASES = [c for c in ALL if _stricter(c) is not None]


@pytest.mark.parametrize("case", cases.params(STRICTER_CASES))
def test_stricter_than_valohai_yaml(files: Files, case: Case) -> None:
    path = files.path(case)
    errors = _reject(path)
    text = [str(d) for d in errors]
    for line, fragment in _stricter(case) or []:
        assert any(d.location.line == line and fragment in d.message for d in errors), (line, fragment, text)
    assert all(Path(d.location.file).resolve() == path.resolve() for d in errors)


# (file, plural edges, plural pipeline-parameter targets)
PLURAL = [
    (Case(cases.SHAPES, "plural-sockets.yaml"), 4, 8),
    (Case(cases.CORPUS, "valohai__NVIDIA-MONAI-Valohai__valohai.yaml"), 4, 8),
]


@pytest.mark.parametrize(("case", "edges", "targets"), cases.rows(*PLURAL))
def test_plural_sockets_warn_and_compile(files: Files, case: Case, edges: int, targets: int) -> None:
    """INDEX H1: `preprocess.outputs.*.zip` edges and `train.parameters.x` pipeline parameter targets."""
    plan = compile_project(files.path(case))
    warnings = [d for d in plan.diagnostics if 'read as "output"' in d.message]
    assert len(warnings) == edges
    assert all(d.location.line > 0 for d in warnings)
    assert len([d for d in plan.diagnostics if '"parameters" read as "parameter"' in d.message]) == targets
    (pipeline,) = plan.pipelines
    assert {e.source_kind.value for e in pipeline.edges} == {"output"}
    assert all(len(p.targets) == 2 for p in pipeline.parameters)


@pytest.mark.parametrize(("case", "names"), cases.fan_out_params())
def test_fan_out_fan_in_compiles_every_pipeline(files: Files, case: Case, names: FanOut) -> None:
    plan = compile_project(files.path(case))
    pipelines = [p.name for p in plan.pipelines]
    assert pipelines == [names.linear, names.three, names.deploy, names.broken, names.dynamic]
    three = next(p for p in plan.pipelines if p.name == names.three)  # H17: a bad image is a run-time failure
    assert three.reuse_executions
    assert three.nodes[0].name == names.first
    assert three.nodes[-1].name == names.last
    assert sum(e.source_kind.value == "input" for e in three.edges) == 3
    deploy = next(p for p in plan.pipelines if p.name == names.deploy)
    node = deploy.node(names.deployment)
    assert node.kind is NodeKind.DEPLOYMENT
    assert node.endpoints == (names.endpoint,)
    assert [a.then for a in node.actions] == [("require-approval",)]
    # require-approval is documented by Valohai and implemented by us: no "not well-known" warning
    assert not any("not well-known" in d.message for d in plan.diagnostics)
    dynamic = next(p for p in plan.pipelines if p.name == names.dynamic)
    assert [n.kind for n in dynamic.nodes].count(NodeKind.TASK) == 1


def test_commit_pins_warn_and_the_dags_folder_step_runs(files: Files) -> None:
    plan = compile_project(files.path(Case(cases.SHAPES, "commit-pins.yaml")))
    pins = [d for d in plan.diagnostics if "is ignored; valohai-airflow runs the step" in d.message]
    assert [(d.location.line, d.severity) for d in pins] == [(20, Severity.WARNING), (21, Severity.WARNING)]
    (pipeline,) = plan.pipelines
    assert [(n.name, n.kind, n.step.name if n.step else None) for n in pipeline.nodes] == [
        ("gather", NodeKind.EXECUTION, "gather"),
        ("summarise", NodeKind.TASK, "summarise"),
    ]


def test_task_nodes_take_their_executions_from_blueprints(files: Files) -> None:
    plan = compile_project(files.path(Case(cases.SHAPES, "task-blueprint.yaml")))
    (pipeline,) = plan.pipelines
    assert [(n.name, n.kind) for n in pipeline.nodes] == [
        ("grid", NodeKind.TASK),
        ("steps", NodeKind.TASK),
        ("compare", NodeKind.EXECUTION),
    ]
    assert not plan.diagnostics


def test_deployment_with_two_files_and_parameter_chains(files: Files) -> None:
    plan = compile_project(files.path(Case(cases.SHAPES, "deployment-files.yaml")))
    ship = plan.pipelines[0].node("ship")
    assert ship.kind is NodeKind.DEPLOYMENT and ship.step is None
    kinds = sorted(e.source_kind.value + "->" + e.target_kind.value for e in plan.pipelines[0].edges)
    assert kinds.count("parameter->parameter") == 4 and kinds.count("output->file") == 2
    only = plan.pipelines[1]  # INDEX H16: ordering without data
    assert {e.source_kind.value for e in only.edges} == {"parameter"}
    assert [n.name for n in only.nodes] == ["encode", "tune"]


def test_valohais_three_trainings_pipeline(files: Files) -> None:
    """Valohai's documented example: 23 edges, of which the self parameter edge is dropped; the train
    nodes' overrides clear the input defaults; the deployment node takes the best model by its file edge."""
    plan = compile_project(files.path(Case(cases.SHAPES, "three-trainings.yaml")))
    (pipeline,) = plan.pipelines
    assert len(pipeline.edges) == 22
    assert [n.name for n in pipeline.nodes] == [
        "preprocess-node",
        *(f"train{i}-node" for i in (1, 2, 3)),
        *(f"evaluate{i}-node" for i in (1, 2, 3)),
        "find-best-model-node",
        "deploy-node",
    ]
    assert pipeline.upstreams("find-best-model-node") == tuple(f"evaluate{i}-node" for i in (1, 2, 3))
    assert pipeline.upstreams("deploy-node") == ("find-best-model-node",)
    train = pipeline.node("train1-node").step
    assert train is not None and all(i.default == () for i in train.inputs)
    (file_edge,) = pipeline.edges_into("deploy-node")
    assert (file_edge.target_kind, file_edge.target_key) == (EdgeKind.FILE, "predict-digit.model")
    assert pipeline.node("find-best-model-node").sources.parameter("my_param").edges == ()
    assert [d.message.split(": ", 2)[1] for d in plan.diagnostics] == [
        "edge find-best-model-node.parameter.my_param → find-best-model-node.parameter.my_param"
    ]


def test_override_replaces_image_command_and_items_by_name(files: Files) -> None:
    plan = compile_project(files.path(Case(UPSTREAM, "examples/pipeline-with-override-example.yaml")))
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


def _upstream(files: Files, name: str) -> Path:
    return files.path(Case(UPSTREAM, name))


def test_invalid_override_file_names_each_error_with_its_line(files: Files) -> None:
    """Override of an unknown input and parameter, and a misspelled step, all three reported."""
    errors = _reject(_upstream(files, "tests/error_examples/invalid-pipeline-with-override-example.yaml"))
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


def test_unknown_task_blueprint_is_rejected(files: Files) -> None:
    errors = _reject(_upstream(files, "tests/error_examples/invalid-task-blueprint-reference.yaml"))
    assert any('task blueprint "my-non-existent-task" does not exist' in d.message for d in errors)
    assert all(d.location.line > 0 for d in errors)


def test_preset_override_without_environment_is_rejected(files: Files) -> None:
    """valohai-yaml lint reports it, parse()+convert do not."""
    path = _upstream(files, "tests/error_examples/pipeline-with-preset-override-without-environment.yaml")
    errors = _reject(path)
    assert any('missing "environment"' in d.message and d.location.line > 0 for d in errors)


INVALID_CASES = [c for c in ALL if _invalid(c)]


@pytest.mark.parametrize(
    "case",
    cases.params(
        INVALID_CASES,
        marks={
            c.id: pytest.mark.xfail(strict=True, reason=GAPS[str(c.upstream_name)])
            for c in INVALID_CASES
            if c.upstream_name in GAPS
        },
    ),
)
def test_invalid_file_is_rejected_with_a_line(files: Files, case: Case) -> None:
    errors = _reject(files.path(case))
    assert errors
    assert all(d.severity is Severity.ERROR for d in errors)
    assert any(d.location.line > 0 for d in errors), [str(d) for d in errors]


def test_dangling_steps_of_valohai_utils_fixture(files: Files) -> None:
    errors = _reject(
        files.path(
            Case(cases.CORPUS, "valohai__valohai-utils__tests__test_yaml__test4.original.valohai.yaml")
        )
    )
    assert [d.location.line for d in errors if "does not exist" in d.message] == [51, 54]


def _example_project() -> Path:
    return Path(__file__).resolve().parents[3] / "dags" / "example" / "valohai.yaml"


def test_example_project_compiles() -> None:
    plan = compile_project(_example_project())
    assert plan.name == "example"
    assert plan.pipelines
