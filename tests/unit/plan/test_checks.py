"""One synthetic valohai.yaml per plan check: the error or warning, its line, and its hint."""

from __future__ import annotations

import pytest

from tests.unit.plan.support import compile_text, messages, plan_errors
from valohai_airflow.plan.model import EdgeKind, NodeKind, Origin
from valohai_airflow.spec.diagnostics import Severity
from valohai_airflow.spec.parse import parse_text

STEPS = """\
- step:
    name: prep
    image: busybox
    command: date
    parameters:
      - name: size
        type: integer
        default: 3
    inputs:
      - name: raw
        default: https://example.com/raw.csv
    environment-variables:
      - name: MODE
        default: fast
- step:
    name: train
    image: busybox
    command: date {parameters}
    parameters:
      - name: epochs
        type: integer
        default: 5
        min: 1
      - name: rate
        type: float
        default: 0.1
      - name: tags
        type: string
        multiple: repeat
        default: [a, b]
    inputs:
      - name: dataset
        default: https://example.com/data.csv
      - name: extra
    environment-variables:
      - name: MODE
        default: slow
- endpoint:
    name: predict
    image: busybox
    server-command: date
    port: 8000
    files:
      - name: model
        path: model.pkl
- task:
    name: sweep
    step: train
    parameters:
      - name: epochs
        style: multiple
        rules: {items: [1, 2, 3]}
"""


def pipeline(nodes: str, edges: str = "[]", extra: str = "") -> str:
    """STEPS plus one pipeline `p`; `nodes`/`edges` are YAML at the nesting of the pipeline keys."""
    text = STEPS + "- pipeline:\n    name: p\n    nodes:\n" + _indent(nodes, 6) + "    edges:"
    text += " []\n" if edges == "[]" else "\n" + _indent(edges, 6)
    return text + _indent(extra, 4)


def _indent(block: str, spaces: int) -> str:
    lines = [line for line in block.strip("\n").splitlines()]
    if not lines:
        return ""
    margin = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "".join(" " * spaces + line[margin:] + "\n" for line in lines)


def line_of(text: str, needle: str, *, last: bool = False) -> int:
    """1-based line of the first (or last) line containing `needle`."""
    found = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert found, needle
    return found[-1] if last else found[0]


TWO_NODES = """
- {name: a, type: execution, step: prep}
- {name: b, type: execution, step: train}
"""


def test_plain_pipeline_compiles_in_order() -> None:
    text = pipeline(
        """
        - {name: late, type: execution, step: train}
        - {name: early, type: execution, step: prep}
        """,
        "- [early.output.*.csv, late.input.dataset]",
    )
    (plan,) = compile_text(text).pipelines
    assert [n.name for n in plan.nodes] == ["early", "late"]
    (edge,) = plan.edges
    assert (edge.source_kind, edge.source_key, edge.target_kind, edge.target_key) == (
        EdgeKind.OUTPUT,
        "*.csv",
        EdgeKind.INPUT,
        "dataset",
    )
    assert edge.location.line == line_of(text, "early.output")
    assert plan.nodes[1].task_id == "late"


def test_unknown_step_with_did_you_mean() -> None:
    text = pipeline("- {name: a, type: execution, step: trian}")
    (error,) = plan_errors(text)
    assert error.message == 'pipeline "p": node "a": step "trian" does not exist'
    assert error.hint == 'did you mean "train"?'
    assert error.location.line == line_of(text, "step: trian")


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("a__approval", 'the approval task of task "a"'),
        ("a__variants", 'the variants task of task "a"'),
        ("valohai__finished", "the pipeline's finished task"),
    ],
)
def test_a_node_may_not_take_a_task_id_the_builder_gives_its_own_tasks(name: str, what: str) -> None:
    text = pipeline(
        f"- {{name: a, type: execution, step: prep}}\n- {{name: {name}, type: execution, step: train}}"
    )
    (error,) = plan_errors(text)
    assert (
        error.message == f'pipeline "p": node "{name}" maps to the Airflow task id "{name}", which is {what}'
    )
    assert error.hint == "rename the node"
    assert error.location.line == line_of(text, f"name: {name}")


def test_unknown_node_in_edges_both_ends_reported() -> None:
    text = pipeline(TWO_NODES, "- [aa.output.x, c.input.dataset]")
    errors = plan_errors(text)
    line = line_of(text, "aa.output")
    source_column = text.splitlines()[line - 1].index("aa.output") + 1
    target_column = text.splitlines()[line - 1].index("c.input") + 1
    assert messages(errors) == [
        f'valohai.yaml:{line}:{source_column}: error: pipeline "p": edge source aa.output.x: '
        'node "aa" does not exist (did you mean "a"?)',
        f'valohai.yaml:{line}:{target_column}: error: pipeline "p": edge target c.input.dataset: '
        'node "c" does not exist (known: "a", "b")',
    ]


def test_unknown_input_and_parameter_edge_targets() -> None:
    text = pipeline(
        TWO_NODES,
        """
        - [a.output.x, b.input.datset]
        - [a.metadata.best, b.parameter.epoch]
        """,
    )
    errors = plan_errors(text)
    assert [(e.message, e.hint, e.location.line) for e in errors] == [
        (
            'pipeline "p": edge target b.input.datset: step "train" has no input "datset"',
            'did you mean "dataset"?',
            line_of(text, "b.input.datset"),
        ),
        (
            'pipeline "p": edge target b.parameter.epoch: step "train" has no parameter "epoch"',
            'did you mean "epochs"?',
            line_of(text, "b.parameter.epoch"),
        ),
    ]


def test_unknown_source_parameter() -> None:
    text = pipeline(TWO_NODES, "- [a.parameter.sise, b.parameter.epochs]")
    (error,) = plan_errors(text)
    assert 'edge source a.parameter.sise: step "prep" has no parameter "sise"' in error.message
    assert error.hint == 'did you mean "size"?'


@pytest.mark.parametrize(
    ("edge", "fragment"),
    [
        ("[a.output.x, b.parameter.epochs]", "an output cannot go into a parameter"),
        ("[a.metadata.m, b.input.dataset]", "metadata cannot go into an input"),
        ("[a.parameter.size, b.input.dataset]", "a parameter cannot go into an input"),
        ("[a.input.raw, b.parameter.epochs]", "an input cannot go into a parameter"),
        (
            "[a.environment-variable.MODE, b.parameter.epochs]",
            "an environment variable cannot go into a parameter",
        ),
        ("[a.dependency.x, b.input.dataset]", "a dependency cannot go into an input"),
    ],
)
def test_edge_type_pairings(edge: str, fragment: str) -> None:
    text = pipeline(TWO_NODES, f"- {edge}")
    (error,) = plan_errors(text)
    assert fragment in error.message
    assert error.location.line == line_of(text, edge)


def test_unknown_edge_type_with_did_you_mean() -> None:
    text = pipeline(TWO_NODES, "- [a.ouput.x, b.input.dataset]")
    (error,) = plan_errors(text)
    assert '"ouput" is not an edge type' in error.message
    assert error.hint == 'did you mean "output"?'


def test_plural_edge_types_warn_and_normalise() -> None:
    text = pipeline(
        TWO_NODES,
        """
        - [a.outputs.x, b.inputs.extra]
        - [a.parameters.size, b.parameters.epochs]
        """,
    )
    plan = compile_text(text)
    kinds = {(e.source_kind, e.target_kind) for e in plan.pipelines[0].edges}
    assert kinds == {(EdgeKind.OUTPUT, EdgeKind.INPUT), (EdgeKind.PARAMETER, EdgeKind.PARAMETER)}
    assert len(plan.diagnostics) == 4
    assert all(d.severity is Severity.WARNING for d in plan.diagnostics)
    assert '"outputs" read as "output"' in plan.diagnostics[0].message


def test_all_eight_edge_types() -> None:
    text = pipeline(
        """
        - {name: a, type: execution, step: prep}
        - {name: b, type: execution, step: train}
        - {name: d, type: deployment, deployment: dep, endpoints: [predict]}
        - {name: c, type: execution, step: train}
        """,
        """
        - [a.output.*.csv, b.input.dataset]
        - [a.input.raw, b.input.extra]
        - [a.parameter.size, b.parameter.epochs]
        - [a.metadata.lr, b.parameter.rate]
        - [a.environment-variable.MODE, b.environment-variable.MODE]
        - [b.output.model.pkl, d.file.predict.model]
        - [d.deployment.version_id, c.parameter.tags]
        - [b.dependency.x, c.dependency.y]
        """,
    )
    (plan,) = compile_text(text).pipelines
    assert [n.name for n in plan.nodes] == ["a", "b", "d", "c"]
    assert {e.source_kind for e in plan.edges} == set(EdgeKind) - {EdgeKind.FILE}
    assert {e.target_kind for e in plan.edges} >= {EdgeKind.FILE, EdgeKind.DEPENDENCY}
    file_edge = next(e for e in plan.edges if e.target_kind is EdgeKind.FILE)
    assert file_edge.source_key == "model.pkl"
    assert file_edge.target_key == "predict.model"
    deploy = plan.node("d")
    assert deploy.kind is NodeKind.DEPLOYMENT
    assert (deploy.deployment, deploy.endpoints, deploy.step) == ("dep", ("predict",), None)


def test_deployment_node_checks() -> None:
    text = pipeline(
        """
        - {name: b, type: execution, step: train}
        - {name: d, type: deployment, deployment: dep, endpoints: [predikt]}
        - {name: e, type: deployment, deployment: dep, endpoints: [predict]}
        """,
        """
        - [b.output.m, e.file.other.model]
        - [b.output.m, e.file.predict.modle]
        - [b.output.m, e.file.predict]
        - [e.output.x, b.input.extra]
        """,
    )
    found = [(e.message, e.hint) for e in plan_errors(text)]
    assert found == [
        (
            'pipeline "p": deployment node "d": endpoint "predikt" does not exist; endpoints are defined by '
            "top-level `endpoint:` items",
            'did you mean "predict"?',
        ),
        (
            'pipeline "p": edge target e.file.other.model: deployment node "e" has no endpoint "other"',
            'known: "predict"',
        ),
        (
            'pipeline "p": edge target e.file.predict.modle: endpoint "predict" has no file "modle"',
            'did you mean "model"?',
        ),
        ('pipeline "p": edge target e.file.predict: a deployment file is written "<endpoint>.<file>"', None),
        (
            'pipeline "p": edge source e.output.x: a deployment node has no "output" source '
            '(its edges can start from "deployment" or "dependency")',
            None,
        ),
    ]


def test_two_edges_into_one_parameter() -> None:
    text = pipeline(
        TWO_NODES,
        """
        - [a.metadata.e, b.parameter.epochs]
        - [a.parameter.size, b.parameter.epochs]
        """,
    )
    (error,) = plan_errors(text)
    first = line_of(text, "a.metadata.e")
    assert error.message == (
        f'pipeline "p": parameter "epochs" of node "b" is filled by two edges (the other at line {first}); '
        "only one edge may fill a parameter"
    )
    assert error.location.line == first + 1


def test_several_edges_into_one_input_accumulate() -> None:
    text = pipeline(
        TWO_NODES + "- {name: c, type: execution, step: prep}",
        """
        - [a.output.x, b.input.dataset]
        - [c.output.y, b.input.dataset]
        """,
    )
    assert len(compile_text(text).pipelines[0].edges_into("b")) == 2


def test_cycle_is_named() -> None:
    text = pipeline(
        """
        - {name: a, type: execution, step: train}
        - {name: b, type: execution, step: train}
        - {name: c, type: execution, step: train}
        - {name: z, type: execution, step: train}
        """,
        """
        - [a.output.x, b.input.dataset]
        - [b.output.x, c.input.dataset]
        - [c.output.x, a.input.dataset]
        - [c.output.x, z.input.dataset]
        - [z.output.x, z.input.extra]
        """,
    )
    errors = plan_errors(text)
    assert [(e.message, e.location.line) for e in errors] == [
        ('pipeline "p": the edges form a cycle: a → b → c → a', line_of(text, "c.output.x, a.input")),
        ('pipeline "p": the edges form a cycle: z → z', line_of(text, "z.output.x")),
    ]


def test_an_edge_from_a_socket_to_itself_warns_and_is_dropped() -> None:
    """Valohai's Three-Trainings example has `[n.parameter.my_param, n.parameter.my_param]`: it does
    nothing, so it warns at the edge and is neither a dependency nor a value source of the node."""
    text = pipeline(
        TWO_NODES,
        """
        - [a.output.x, b.input.dataset]
        - [b.parameter.epochs, b.parameter.epochs]
        - [b.parameters.rate, b.parameter.rate]
        """,
    )
    plan = compile_text(text)
    column = text.splitlines()[line_of(text, "b.parameter.epochs") - 1].index("[") + 1  # the edge's flow list
    warned = [
        (d.message, d.location.line, d.location.column)
        for d in plan.diagnostics
        if "same socket" in d.message
    ]
    assert warned == [
        (
            'pipeline "p": edge b.parameter.epochs → b.parameter.epochs: both ends are the same socket, '
            "so the edge does nothing; it is dropped",
            line_of(text, "b.parameter.epochs"),
            column,
        ),
        (
            'pipeline "p": edge b.parameters.rate → b.parameter.rate: both ends are the same socket, '
            "so the edge does nothing; it is dropped",
            line_of(text, "b.parameters.rate"),
            column,
        ),
    ]
    (compiled,) = plan.pipelines
    assert [(e.source_node, e.target_node) for e in compiled.edges] == [("a", "b")]
    assert compiled.upstreams("b") == ("a",)
    b = compiled.node("b").sources
    assert [e.source_node for e in b.edges] == ["a"]
    assert b.parameter("epochs").edges == () and b.parameter("epochs").origin is not Origin.EDGE
    assert b.parameter("rate").edges == () and b.parameter("rate").origin is not Origin.EDGE


def test_other_edges_from_a_node_to_itself_are_cycles() -> None:
    """Output into its own input, metadata into its own parameter, one parameter into another: the node
    would have to finish before it starts."""
    text = pipeline(
        TWO_NODES,
        """
        - [b.output.x, b.input.extra]
        - [b.metadata.m, b.parameter.epochs]
        - [b.parameter.epochs, b.parameter.rate]
        """,
    )
    errors = plan_errors(text)
    assert [(e.message, e.location.line) for e in errors] == [
        ('pipeline "p": the edges form a cycle: b → b', line_of(text, "b.output.x")),
    ]


def test_pipeline_parameters() -> None:
    text = pipeline(
        TWO_NODES,
        extra="""
        parameters:
          - name: ep
            targets: [b.parameter.epochs]
            default: 7
            description: how long
          - name: plural
            target: b.parameters.rate
          - name: lonely
        """,
    )
    plan = compile_text(text)
    (p,) = plan.pipelines
    assert [(pp.name, pp.targets, pp.default) for pp in p.parameters] == [
        ("ep", (("b", "epochs"),), 7),
        ("plural", (("b", "rate"),), None),
        ("lonely", (), None),
    ]
    assert [d.message for d in plan.diagnostics] == [
        'pipeline "p": parameter "plural" target "b.parameters.rate": "parameters" read as "parameter" '
        '(write "b.parameter.rate")',
        'pipeline "p": parameter "lonely": no targets.',
    ]


def test_pipeline_parameter_target_errors() -> None:
    text = pipeline(
        TWO_NODES + "- {name: d, type: deployment, deployment: dep}",
        extra="""
        parameters:
          - name: one
            targets: [b.input.dataset, x.parameter.epochs, b.parameter.epoch, d.parameter.x, b]
          - name: two
            targets: [b.parameter.rate]
          - name: three
            targets: [b.parameter.rate]
        """,
    )
    errors = plan_errors(text)
    assert [(e.message, e.hint) for e in errors] == [
        (
            'pipeline "p": parameter "one" target "b.input.dataset": socket type "input" is not supported',
            'use "parameter"',
        ),
        (
            'pipeline "p": parameter "one" target "x.parameter.epochs": the node "x" does not exist',
            'known: "a", "b", "d"',
        ),
        (
            'pipeline "p": parameter "one" target "b.parameter.epoch": the parameter "epoch" does not exist in step "train"',
            'did you mean "epochs"?',
        ),
        (
            'pipeline "p": parameter "one" target "d.parameter.x": "d" is a deployment node, it has no parameters',
            None,
        ),
        ('pipeline "p": parameter "one" target "b": write "<node>.parameter.<name>"', None),
        (
            'pipeline "p": parameter "three" target "b.parameter.rate": pipeline parameter "two" already sets it; '
            "only one pipeline parameter may set a node parameter",
            None,
        ),
    ]
    assert all(e.location.line == line_of(text, "- name: one") for e in errors[:5])


def test_override_merges_by_name_and_clears_missing_defaults() -> None:
    text = pipeline(
        """
        - name: b
          type: execution
          step: train
          override:
            image: python:3.12
            command:
              - python train.py {parameters}
            parameters:
              - name: epochs
              - name: rate
                default: 0.5
                description: node's own
            inputs:
              - name: dataset
            environment-variables:
              - name: MODE
                default: turbo
        """
    )
    (p,) = compile_text(text).pipelines
    step = p.node("b").step
    assert step is not None
    assert step.image == "python:3.12"
    assert step.command == ("python train.py {parameters}",)
    epochs, rate, tags = step.parameters
    assert (epochs.name, epochs.default, epochs.type, epochs.min) == ("epochs", None, "integer", 1)
    assert (rate.default, rate.type, rate.description) == (0.5, "float", "node's own")
    assert (tags.default, tags.multiple) == (
        ["a", "b"],
        "repeat",
    )  # untouched items stay as the step has them
    assert step.input("dataset").default == ()  # type: ignore[union-attr]
    assert step.input("extra").default == ()  # type: ignore[union-attr]
    assert step.environment_variable("MODE").default == "turbo"  # type: ignore[union-attr]
    assert epochs.location.line == line_of(text, "- name: epochs", last=True)  # the override item


def test_override_unknown_items_with_did_you_mean() -> None:
    text = pipeline(
        """
        - name: b
          type: execution
          step: train
          override:
            parameters:
              - {name: epoch, default: 1}
            inputs:
              - {name: data}
        """
    )
    assert [(e.message, e.hint, e.location.line) for e in plan_errors(text)] == [
        (
            'pipeline "p": node "b" override: parameter "epoch" does not exist in step "train"',
            'did you mean "epochs"?',
            line_of(text, "{name: epoch,"),
        ),
        (
            'pipeline "p": node "b" override: input "data" does not exist in step "train"',
            'did you mean "dataset"?',
            line_of(text, "{name: data}"),
        ),
    ]


def test_override_that_does_not_merge() -> None:
    text = pipeline(
        """
        - name: b
          type: execution
          step: train
          override:
            parameters:
              - {name: tags, type: flag}
        """
    )
    (error,) = plan_errors(text)
    assert error.message.startswith('pipeline "p": node "b" override: parameter "tags" does not merge')
    assert "flag parameters can't be multiple" in error.message


def test_task_nodes() -> None:
    text = pipeline(
        """
        - {name: s, type: task, step: train}
        - {name: t, type: task, task: sweep}
        """
    )
    (p,) = compile_text(text).pipelines
    assert [
        (n.kind, n.blueprint.name if n.blueprint else None, n.step.name if n.step else None) for n in p.nodes
    ] == [
        (NodeKind.TASK, None, "train"),
        (NodeKind.TASK, "sweep", "train"),
    ]


def test_unknown_task_blueprint() -> None:
    text = pipeline("- {name: t, type: task, task: swep}")
    (error,) = plan_errors(text)
    assert (error.message, error.hint) == (
        'pipeline "p": node "t": task blueprint "swep" does not exist',
        'did you mean "sweep"?',
    )


def test_blueprint_varying_a_parameter_the_step_lacks() -> None:
    text = STEPS.replace("- name: epochs\n        style", "- name: epoch\n        style") + (
        "- pipeline:\n    name: p\n    nodes:\n      - {name: t, type: task, task: sweep}\n    edges: []\n"
    )
    (error,) = plan_errors(text)
    assert 'task blueprint "sweep" sets parameter "epoch", which step "train" does not have' in error.message
    assert error.hint == 'did you mean "epochs"?'


def test_commit_is_accepted_with_a_warning() -> None:
    text = pipeline("- {name: b, type: execution, step: train, commit: abc123}")
    plan = compile_text(text)
    (warning,) = plan.diagnostics
    assert "`commit: abc123` is ignored" in warning.message
    assert plan.pipelines[0].node("b").step is not None


def test_actions_and_node_settings() -> None:
    text = pipeline(
        """
        - name: b
          type: execution
          step: train
          on-error: continue
          edge-merge-mode: append
          actions:
            - when: node-complete
              if: [metadata.loss < 0.1, parameter.epochs > 2]
              then: stop-pipeline
            - when: node-starting
              then: require-approval
            - when: node-finished
              then: [launch-rockets]
        """
    )
    plan = compile_text(text)
    node = plan.pipelines[0].node("b")
    assert (node.on_error, node.edge_merge_mode) == ("continue", "append")
    assert node.actions[0].condition == ("metadata.loss < 0.1", "parameter.epochs > 2")
    assert node.actions[1].then == ("require-approval",)
    assert [(d.message, d.hint) for d in plan.diagnostics] == [
        (
            'pipeline "p": node "b": action "when" value "node-finished" is not well-known; '
            "the action might never be triggered",
            'known: "node-complete", "node-error", "node-starting"',
        ),
        (
            'pipeline "p": node "b": action "then" value "launch-rockets" is not well-known; the action might do nothing',
            'known: "error-pipeline", "noop", "require-approval", "stop-pipeline"',
        ),
    ]


def test_duplicate_and_dotted_node_names_are_rejected_with_lines() -> None:
    """The spec layer reports these at parse time (so the plan never sees such a pipeline)."""
    duplicate = pipeline("- {name: a, type: execution, step: prep}\n- {name: a, type: execution, step: prep}")
    (error,) = parse_text(duplicate, "valohai.yaml").diagnostics.errors
    assert "more than one node named 'a'" in error.message
    # spec reports it at the pipeline mapping (the line after "- pipeline:")
    assert error.location.line == line_of(duplicate, "- pipeline:") + 1
    dotted = pipeline("- {name: x.y, type: execution, step: prep}")
    (error,) = parse_text(dotted, "valohai.yaml").diagnostics.errors
    assert "node name 'x.y' must not contain '.'" in error.message
    assert error.location.line == line_of(dotted, "x.y")


def test_task_ids_for_weird_node_names() -> None:
    text = pipeline(
        """
        - {name: Train Model, type: execution, step: train}
        - {name: Train_Model, type: execution, step: train}
        - {name: träin, type: execution, step: train}
        - {name: "評価", type: execution, step: train}
        """
    )
    (p,) = compile_text(text).pipelines
    ids = [n.task_id for n in p.nodes]
    assert ids[1] == "Train_Model"
    assert ids[0].startswith("Train_Model_") and ids[0] != ids[1]
    assert ids[2].startswith("train_")
    assert ids[3].startswith("node_")
    assert len(set(ids)) == 4


def test_all_errors_are_collected_across_pipelines() -> None:
    text = pipeline("- {name: a, type: execution, step: nope}", "- [a.output.x, zz.input.y]") + (
        "- pipeline:\n    name: q\n    nodes:\n      - {name: b, type: execution, step: nope2}\n    edges: []\n"
    )
    errors = plan_errors(text)
    assert len(errors) == 3
    assert {e.message.split(":")[0] for e in errors} == {'pipeline "p"', 'pipeline "q"'}


def test_pipeline_parameter_defaults_must_fit_their_targets() -> None:
    text = pipeline(
        TWO_NODES + "- {name: t, type: task, step: train}\n- {name: t2, type: task, step: train}",
        extra="""
        parameters:
          - {name: fine-list, targets: [b.parameter.tags], default: [x, y]}
          - {name: spread, targets: [t.parameter.epochs], default: [1, 2, 3]}
          - {name: word, targets: [b.parameter.epochs], default: many}
          - {name: low, targets: [b.parameter.rate, t2.parameter.epochs], default: 0}
          - {name: listed, targets: [a.parameter.size], default: [1, 2]}
        """,
    )
    assert [e.message for e in plan_errors(text)] == [
        'pipeline "p": parameter "word" target "b.parameter.epochs": default \'many\' does not fit: '
        "many is not an integer",
        'pipeline "p": parameter "low" target "t2.parameter.epochs": default 0 does not fit: '
        "0 is less than the minimum allowed (1)",
        'pipeline "p": parameter "listed" target "a.parameter.size": default [1, 2] does not fit: '
        "Only a single value is allowed",
    ]


def test_input_edge_source_glob_must_match_an_input_name() -> None:
    text = pipeline(
        TWO_NODES,
        """
        - [b.input.data*, a.input.raw]
        - [b.input.modle, a.input.raw]
        """,
    )
    (error,) = plan_errors(text)
    assert error.message == (
        'pipeline "p": edge source b.input.modle: "modle" matches no input of step "train" '
        "(an input edge passes on the files of the inputs whose names match)"
    )
    assert error.location.line == line_of(text, "b.input.modle")


def test_two_edges_into_one_environment_variable() -> None:
    text = pipeline(
        TWO_NODES + "- {name: c, type: execution, step: prep}",
        """
        - [a.environment-variable.MODE, b.environment-variable.MODE]
        - [c.environment-variable.MODE, b.environment-variable.MODE]
        """,
    )
    (error,) = plan_errors(text)
    assert 'environment variable "MODE" of node "b" is filled by two edges' in error.message


def test_pipeline_parameter_and_edge_into_one_parameter_warns() -> None:
    text = pipeline(
        TWO_NODES,
        "- [a.metadata.e, b.parameter.epochs]",
        extra="""
        parameters:
          - {name: ep, target: b.parameter.epochs, default: 2}
        """,
    )
    (warning,) = compile_text(text).diagnostics
    assert warning.message == (
        f'pipeline "p": parameter "ep" target "b.parameter.epochs": the edge at line '
        f"{line_of(text, 'a.metadata.e')} fills the same parameter and wins at run time"
    )


def test_a_pipeline_above_the_node_limit_is_a_located_error_and_the_other_pipelines_are_still_checked() -> (
    None
):
    from tests.support.synthetic import synthetic_yaml
    from valohai_airflow.plan.limits import MAX_PIPELINE_NODES

    too_big = synthetic_yaml(MAX_PIPELINE_NODES + 1, 10)
    other = "- pipeline:\n    name: other\n    nodes: []\n    edges: [[a.output.x, b.input.y]]\n"
    size, *rest = plan_errors(too_big + other)
    assert size.location.line == too_big.splitlines().index("- pipeline:") + 2, size  # its `name:` line
    assert f"has {MAX_PIPELINE_NODES + 1:,} nodes" in size.message and "at most 5,000" in size.message
    assert size.hint and "task node" in size.hint
    assert rest and all('pipeline "other"' in d.message for d in rest), messages(rest)


def test_a_pipeline_at_the_node_limit_compiles() -> None:
    from tests.support.synthetic import synthetic_yaml
    from valohai_airflow.plan.limits import MAX_PIPELINE_NODES

    plan = compile_text(synthetic_yaml(MAX_PIPELINE_NODES, 4 * MAX_PIPELINE_NODES))
    (pipeline,) = plan.pipelines
    assert len(pipeline.nodes) == MAX_PIPELINE_NODES and len(pipeline.edges) == 4 * MAX_PIPELINE_NODES


def _wide_step(parameters: int) -> str:
    rows = "".join(f"      - {{name: p{i}, type: integer, default: {i}}}\n" for i in range(parameters))
    return f"- step:\n    name: wide\n    image: busybox\n    command: echo {{parameters}}\n    parameters:\n{rows}"


def _pipeline(name: str, nodes: int, step: str = "wide") -> str:
    rows = "".join(f"      - {{name: n{i}, type: execution, step: {step}}}\n" for i in range(nodes))
    return f"- pipeline:\n    name: {name}\n    nodes:\n{rows}    edges: []\n"


def test_a_step_above_the_parameter_limit_is_a_located_error_and_one_at_it_compiles() -> None:
    from valohai_airflow.plan.limits import MAX_STEP_PARAMETERS

    plan = compile_text(_wide_step(MAX_STEP_PARAMETERS) + _pipeline("p", 1))
    assert len(plan.pipelines[0].nodes[0].step.parameters) == MAX_STEP_PARAMETERS
    (error,) = plan_errors(_wide_step(MAX_STEP_PARAMETERS + 1) + _pipeline("p", 1))
    assert str(error).startswith("valohai.yaml:2:5: error: step 'wide' has 20,001 parameters")
    assert "at most 20,000 per step" in error.message


def test_a_project_above_the_node_limit_over_its_pipelines_is_a_located_error() -> None:
    """Three pipelines of 4,000 nodes each (one could be copied under new names by YAML merge keys):
    the third is the one that goes over the project's 10,000."""
    text = "- step: {name: wide, image: busybox, command: date}\n" + "".join(
        _pipeline(f"p{k}", 4000) for k in range(3)
    )
    (error,) = plan_errors(text)
    assert error.location.line == line_of(text, "name: p2")
    assert error.message.startswith("pipeline 'p2' brings the project's pipelines to 12,000 nodes")
    assert "at most 10,000 per project" in error.message and error.hint and "task nodes" in error.hint


def test_a_project_above_the_node_parameter_limit_is_a_located_error() -> None:
    """Each node counts its step's parameters: 6 nodes of a 20,000-parameter step are 120,000
    Params and command tokens; 5 are the limit and compile."""
    assert len(compile_text(_wide_step(20_000) + _pipeline("p", 5)).pipelines[0].nodes) == 5
    text = _wide_step(20_000) + _pipeline("p", 3) + _pipeline("q", 3)
    (error,) = plan_errors(text)
    assert error.location.line == line_of(text, "name: q")
    assert error.message.startswith("pipeline 'q' brings the project's pipelines to 120,000 node parameters")
