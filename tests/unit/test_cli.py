"""`valohai-airflow lint` and `graph`, called through `main()` as the console script calls it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support import cases
from tests.support.cases import Case, FanOut, Files
from valohai_airflow.cli import main

TARGETLESS = Case(cases.UPSTREAM, "tests/warning_examples/targetless-pipeline-params.yaml")
BROKEN = Case(cases.UPSTREAM, "examples/pipeline-example.yaml")  # edges into parameters the step lacks
FAN_OUT = cases.fan_out_params()

GOOD = textwrap.dedent(
    """
    - step:
        name: hello
        image: busybox
        command: echo hi
        inputs:
          - name: x
    - pipeline:
        name: p
        nodes:
          - name: a-b
            type: execution
            step: hello
          - name: a_b
            type: execution
            step: hello
        edges:
          - [a-b.output.*, a_b.input.x]
    """
)
GOOD_DAGS = "DAGs: 1 pipeline(s) (p); 1 step(s) (hello); 0 task blueprint(s)"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_lint_a_good_file(
    capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut
) -> None:
    path = files.path(case)
    code, out, _ = run(capsys, "lint", str(path))
    assert code == 0
    assert out.splitlines()[-1] == f"{path}: 0 error(s), 2 warning(s)"


def test_lint_valohais_three_trainings_pipeline(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    """The pipeline of Valohai's documentation compiles; its self parameter edge is its only warning."""
    path = files.path(Case(cases.SHAPES, "three-trainings.yaml"))
    code, out, _ = run(capsys, "lint", str(path))
    assert code == 0
    assert out.splitlines() == [
        f'{path}:134:9: warning: pipeline "Three-Trainings Pipeline": edge '
        "find-best-model-node.parameter.my_param → find-best-model-node.parameter.my_param: "
        "both ends are the same socket, so the edge does nothing; it is dropped",
        f"{path}: DAGs: 1 pipeline(s) (Three-Trainings Pipeline); 4 step(s) (Preprocess dataset (MNIST), "
        "Train model (MNIST), Batch inference (MNIST), Compare predictions (MNIST)); 0 task blueprint(s)",
        f"{path}: 0 error(s), 1 warning(s)",
    ]


def test_lint_a_file_with_errors(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    path = files.path(BROKEN)
    code, out, _ = run(capsys, "lint", str(path))
    assert code == 1
    *findings, summary = out.splitlines()
    assert len(findings) == 7
    for line in findings:
        assert re.fullmatch(rf"{re.escape(str(path))}:\d+:\d+: error: .+", line), line
    assert findings[0] == (
        f'{path}:43:10: error: pipeline "My little pipeline": edge source batch1.parameter.aspect-ratio: '
        'step "Batch feature extraction" has no parameter "aspect-ratio"'
    )
    assert summary == f"{path}: 7 error(s), 0 warning(s)"


def test_strict_makes_warnings_fail(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    path = str(files.path(TARGETLESS))
    code, out, _ = run(capsys, "lint", path)
    assert code == 0
    assert re.match(rf"{re.escape(path)}:14:9: warning: .*parameter \"id\": no targets", out)
    assert run(capsys, "lint", "--strict", path)[0] == 1


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_json_output(capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut) -> None:
    good, broken = str(files.path(case)), str(files.path(BROKEN))
    code, out, _ = run(capsys, "lint", "--format", "json", good, broken)
    assert code == 1
    report = json.loads(out)
    assert set(report) == {good, broken}
    assert {d["severity"] for d in report[good]} == {"warning"}
    assert len(report[broken]) == 7
    first = report[broken][0]
    assert (first["severity"], first["file"], first["line"], first["column"]) == ("error", broken, 43, 10)
    assert all(isinstance(d["line"], int) and d["line"] > 0 and d["column"] > 0 for d in report[broken])


def test_a_directory_is_searched(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for folder in ("one", "deep/er/two", "ignored"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "valohai.yaml").write_text(GOOD)
    (tmp_path / "deep" / "valohai.yml").write_text("not: us")
    (tmp_path / ".airflowignore").write_text("ignored\n")
    code, out, _ = run(capsys, "lint", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        f"{tmp_path}/deep/er/two/valohai.yaml: {GOOD_DAGS}",
        f"{tmp_path}/deep/er/two/valohai.yaml: 0 error(s), 0 warning(s)",
        f"{tmp_path}/one/valohai.yaml: {GOOD_DAGS}",
        f"{tmp_path}/one/valohai.yaml: 0 error(s), 0 warning(s)",
    ]


def test_a_directory_holding_a_virtualenv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A venv's `lib64 -> lib` makes Airflow's walk refuse the tree; `lint .` in a repo must still work."""
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    os.symlink("lib", tmp_path / ".venv" / "lib64")
    (tmp_path / "valohai.yaml").write_text(GOOD)
    code, out, err = run(capsys, "lint", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        f"{tmp_path}/valohai.yaml: {GOOD_DAGS}",
        f"{tmp_path}/valohai.yaml: 0 error(s), 0 warning(s)",
    ]
    assert "without following symlinks" in err


def test_missing_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "valohai.yaml"
    code, out, _ = run(capsys, "lint", str(missing))
    assert code == 1
    assert out.splitlines()[0] == f"{missing}: error: cannot read: No such file or directory"
    code, _, err = run(capsys, "graph", str(missing))
    assert (code, err.strip()) == (1, f"{missing}: error: cannot read: No such file or directory")
    code, _, err = run(capsys, "lint", str(tmp_path))
    assert code == 1 and "no valohai.yaml found" in err


GRAPH_TEXT = {
    "fan-out-fan-in.yaml": [
        "pipeline linear",
        "  tokenise [execution] step tokenise-corpus in python:3.11",
        "  fit [execution] step fit-classifier in python:3.11-slim",
        "    <- tokenise.output.tokens.parquet into input.tokens",
        "  score [execution] step score-classifier in python:3.11-slim",
        "    <- fit.output.classifier* into input.classifier",
    ],
    "valohai__tensorflow-example__valohai.yaml": [
        "pipeline training-pipeline",
        "  preprocess [execution] step preprocess-dataset in python:3.9",
        "  train [execution] step train-model in tensorflow/tensorflow:2.6.0",
        "    <- preprocess.output.preprocessed_mnist.npz into input.dataset",
        "  evaluate [execution] step batch-inference in tensorflow/tensorflow:2.6.0",
        "    <- train.output.model* into input.model",
    ],
}

GRAPH_MERMAID = {
    "fan-out-fan-in.yaml": [
        "flowchart LR",
        '    n0["tokenise"]',
        '    n1["fit"]',
        '    n2["score"]',
        '    n0 -->|"output.tokens.parquet → input.tokens"| n1',
        '    n1 -->|"output.classifier* → input.classifier"| n2',
    ],
    "valohai__tensorflow-example__valohai.yaml": [
        "flowchart LR",
        '    n0["preprocess"]',
        '    n1["train"]',
        '    n2["evaluate"]',
        '    n0 -->|"output.preprocessed_mnist.npz → input.dataset"| n1',
        '    n1 -->|"output.model* → input.model"| n2',
    ],
}


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_graph_text(capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut) -> None:
    code, out, _ = run(capsys, "graph", str(files.path(case)), "--pipeline", names.linear)
    assert code == 0
    assert out.splitlines() == GRAPH_TEXT[case.name]


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_graph_mermaid(capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut) -> None:
    args = ("graph", str(files.path(case)), "--pipeline", names.linear, "--format", "mermaid")
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert out.splitlines() == GRAPH_MERMAID[case.name]


def test_mermaid_keeps_similar_names_apart(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`a-b` and `a_b` used to share the id `n_a_b`, drawing one node with an edge to itself."""
    (tmp_path / "valohai.yaml").write_text(GOOD)
    code, out, _ = run(capsys, "graph", str(tmp_path / "valohai.yaml"), "--format", "mermaid")
    assert code == 0
    assert out.splitlines() == [
        "flowchart LR",
        '    n0["a-b"]',
        '    n1["a_b"]',
        '    n0 -->|"output.* → input.x"| n1',
    ]


def _pipelines(names: FanOut) -> list[str]:
    return [names.linear, names.three, names.deploy, names.broken, names.dynamic]


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_every_pipeline_without_pipeline_option(
    capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut
) -> None:
    code, out, _ = run(capsys, "graph", str(files.path(case)))
    assert code == 0
    assert [line for line in out.splitlines() if line.startswith("pipeline ")] == [
        f"pipeline {name}" for name in _pipelines(names)
    ]
    assert f"  {names.deployment} [deployment] deployment " in out


@pytest.mark.parametrize(("case", "names"), FAN_OUT)
def test_unknown_pipeline(
    capsys: pytest.CaptureFixture[str], files: Files, case: Case, names: FanOut
) -> None:
    path = files.path(case)
    code, out, err = run(capsys, "graph", str(path), "--pipeline", "nope")
    assert (code, out) == (1, "")
    assert err.strip() == f"{path}: no pipeline 'nope' (pipelines: {', '.join(_pipelines(names))})"


def test_graph_of_a_broken_file(capsys: pytest.CaptureFixture[str], files: Files) -> None:
    path = files.path(BROKEN)
    code, out, err = run(capsys, "graph", str(path))
    assert (code, out) == (1, "")
    assert f"{path}:43:10: error: " in err


def test_the_console_script() -> None:
    script = REPO_ROOT / ".venv" / "bin" / "valohai-airflow"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, check=False, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: valohai-airflow")
    assert "lint" in result.stdout and "graph" in result.stdout


def test_json_stays_json_when_airflow_logs(tmp_path: Path) -> None:
    """Searching a folder imports Airflow, which logs to stdout (here: a deprecation warning read from
    .airflowignore handling); `--format json` output must still parse. A fresh process, as users run it."""
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "valohai.yaml").write_text(GOOD)
    (tmp_path / ".airflowignore").write_text("ignored\n")
    script = REPO_ROOT / ".venv" / "bin" / "valohai-airflow"
    result = subprocess.run(
        [str(script), "lint", "--format", "json", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {str(tmp_path / "one" / "valohai.yaml"): []}


def test_graph_counts_a_task_nodes_executions(capsys: pytest.CaptureFixture[str]) -> None:
    example = REPO_ROOT / "dags" / "example" / "valohai.yaml"
    code, out, _ = run(capsys, "graph", str(example), "--pipeline", "learning-rate-sweep")
    assert code == 0
    assert (
        "  train [task] step train in valohai-airflow/python:3.11, 3 execution(s) from task blueprint "
        "learning-rates\n"
    ) in out


def test_lint_warns_about_an_environment_the_sidecar_does_not_map(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "valohai.yaml").write_text(
        GOOD.replace("command: echo hi", "command: echo hi\n    environment: aws-eu-west-1-p3-2xlarg")
    )
    (tmp_path / "valohai-airflow.yaml").write_text(
        "environments:\n  aws-eu-west-1-p3-2xlarge: {queue: gpu}\n"
    )
    path = tmp_path / "valohai.yaml"
    code, out, _ = run(capsys, "lint", str(path))
    assert code == 0
    assert out.splitlines() == [
        f"{path}:6:18: warning: environment 'aws-eu-west-1-p3-2xlarg' has no mapping in `environments:` of "
        'valohai-airflow.yaml, so nodes "a-b", "a_b" of pipeline "p"; node "hello" of the DAG of step "hello" '
        "run on Airflow's default queue, with no pool, CPU, memory or GPU settings from it "
        '(did you mean "aws-eu-west-1-p3-2xlarge"?)',
        f"{path}: {GOOD_DAGS}",
        f"{path}: 0 error(s), 1 warning(s)",
    ]
    assert run(capsys, "lint", "--strict", str(path))[0] == 1


def test_graph_of_a_file_without_pipelines_shows_its_steps_and_blueprints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It used to print `no pipeline None` and exit 1: a file of steps has DAGs too (issue 25)."""
    (tmp_path / "valohai.yaml").write_text(GOOD.split("- pipeline:")[0] + SWEEP)
    code, out, err = run(capsys, "graph", str(tmp_path / "valohai.yaml"))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "step hello",
        "  hello [execution] step hello in busybox",
        "",
        "task blueprint sweep",
        "  sweep [task] step hello in busybox, 2 execution(s) from task blueprint sweep",
    ]


SWEEP = """\
    parameters:
      - {name: n, type: integer, default: 1}
- task:
    name: sweep
    step: hello
    type: grid_search
    parameters:
      - {name: n, style: multiple, rules: {items: [1, 2]}}
"""


def test_graph_shows_a_step_or_blueprint_dag_by_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "valohai.yaml"
    head, pipeline = GOOD.split("- pipeline:")
    path.write_text(head + SWEEP + "- pipeline:" + pipeline)  # with a pipeline: steps by name
    code, out, _ = run(capsys, "graph", str(path), "--step", "hello", "--format", "mermaid")
    assert (code, out.splitlines()) == (0, ["flowchart LR", '    n0["hello"]'])
    code, out, _ = run(capsys, "graph", str(path), "--task", "sweep")
    assert code == 0 and out.startswith("task blueprint sweep\n")
    code, out, err = run(capsys, "graph", str(path), "--step", "helo")
    assert (code, out) == (1, "")
    assert err.strip() == f"{path}: no step 'helo' (steps with a DAG: hello)"
    (tmp_path / "valohai.yaml").write_text(GOOD.split("- pipeline:")[0])
    (tmp_path / "valohai-airflow.yaml").write_text("step_dags: false\n")
    code, out, err = run(capsys, "graph", str(path))
    assert (code, out) == (1, "")
    assert (
        err.strip() == f"{path}: no pipelines, and valohai-airflow.yaml gives no step or task blueprint a DAG"
    )


def test_lint_lists_the_dags_of_a_file_without_pipelines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "valohai.yaml").write_text(GOOD.split("- pipeline:")[0] + SWEEP)
    (tmp_path / "valohai-airflow.yaml").write_text("step_dags: [helo]\n")
    code, out, _ = run(capsys, "lint", str(tmp_path / "valohai.yaml"))
    assert code == 1
    assert out.splitlines()[0] == (
        f"{tmp_path}/valohai-airflow.yaml:1:13: error: `step_dags:` of valohai-airflow.yaml names step 'helo', which "
        'valohai.yaml does not have (did you mean "hello"?)'
    )
    (tmp_path / "valohai-airflow.yaml").write_text("task_dags: false\n")
    code, out, _ = run(capsys, "lint", str(tmp_path / "valohai.yaml"))
    assert (code, out.splitlines()) == (
        0,
        [
            f"{tmp_path}/valohai.yaml: DAGs: 0 pipeline(s); 1 step(s) (hello); 0 task blueprint(s)",
            f"{tmp_path}/valohai.yaml: 0 error(s), 0 warning(s)",
        ],
    )
