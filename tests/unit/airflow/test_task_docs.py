"""Each node task's doc_md: step, image, the exact command with the trigger form's defaults (built by
the spec's command building and the runtime's parameter resolution), where every parameter and input
gets its value, and the names (never the values) of the container's environment variables."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from airflow.sdk import Param

from tests.conftest import REPO_ROOT
from tests.support import corpus
from tests.support.cases import Files
from tests.support.markdown import table_rows
from valohai_airflow.airflow.factory import build_dag, build_dags
from valohai_airflow.loading.project import compile_project

SECRET = "hunter2-do-not-show"

YAML = textwrap.dedent(
    f"""
    - step:
        name: prep
        image: busybox:1.36
        command:
          - "#!/bin/bash -eu"
          - echo "`date`" {{parameter:rows}}
          - echo ```done```
        parameters:
          - name: rows
            type: integer
            default: 10
            pass-as: -n {{v}}
        environment-variables:
          - name: API_TOKEN
            default: {SECRET}
          - name: REGION
    - step:
        name: train
        image: python:3.11-slim
        command: python train.py {{parameters}}
        parameters:
          - name: epochs
            type: integer
            default: 3
          - name: rows
            type: integer
          - name: label
            type: string
            default: it's "quoted"
          - name: fast
            type: flag
        inputs:
          - name: data
            default: [data/a.csv, s3://bucket/b.csv]
          - name: extra
            optional: true
        environment-variables:
          - name: SEED
            default: "1"
    - step:
        name: needs
        image: busybox:1.36
        command: echo {{parameters}}
        parameters:
          - name: must
            type: integer
    - endpoint:
        name: predict
        image: python:3.11
        server-command: python serve.py
        files:
          - name: model
            path: model.pkl
    - pipeline:
        name: docs
        parameters:
          - name: epochs
            targets: [train.parameter.epochs]
            default: 5
        nodes:
          - name: prep
            type: execution
            step: prep
          - name: train
            type: execution
            step: train
            edge-merge-mode: append
            override:
              image: python:3.12-slim
          - name: needs
            type: execution
            step: needs
          - name: ship
            type: deployment
            deployment: prod
            endpoints: [predict]
        edges:
          - [prep.output.*.csv, train.input.data]
          - [prep.parameter.rows, train.parameter.rows]
          - [prep.environment-variable.REGION, train.environment-variable.REGION]
          - [train.output.model.pkl, ship.file.predict.model]
    """
)


def _docs(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "valohai.yaml").write_text(YAML)
    plan = compile_project(tmp_path / "valohai.yaml", project_name="shop")
    (pipeline,) = plan.pipelines
    dag = build_dag(plan, pipeline)
    return {task.task_id: str(task.doc_md) for task in dag.tasks}


def _code_block(doc: str) -> str:
    match = re.search(r"^(`{3,})\n(.*?)\n\1$", doc, re.MULTILINE | re.DOTALL)
    assert match, doc
    return match.group(2)


def test_task_doc_shows_step_image_and_the_command_with_the_forms_defaults(tmp_path: Path) -> None:
    doc = _docs(tmp_path)["train"]
    assert doc.startswith("# train\n")
    assert "step `train` in image `python:3.12-slim`" in doc  # the override's image, as it runs
    assert "run as `/bin/sh -c <script>` in `/valohai/repository`" in doc
    # the pipeline parameter's default 5 wins over the step's 3; the edge-filled rows is a placeholder;
    # quoting is valohai-yaml's; the unset flag is left out, as Valohai's clients do
    assert _code_block(doc) == (
        "python train.py --epochs=5 '--rows=<prep.parameter.rows>' '--label=it'\"'\"'s \"quoted\"'"
    )
    assert table_rows(doc, "parameter") == [
        ["epochs", "integer", "`5`", "pipeline parameter `epochs`"],
        ["rows", "integer", "at run time", "edge `prep.parameter.rows`"],
        ["label", "string", '`"it\'s \\"quoted\\""`', "trigger form `train.parameter.label`"],
        ["fast", "flag", "`false`", "trigger form `train.parameter.fast`"],
    ]
    assert table_rows(doc, "input") == [
        ["data", "`data/a.csv`, `s3://bucket/b.csv`", "`prep.output.*.csv` (append)"],
        ["extra (optional)", "", ""],
    ]
    assert table_rows(doc, "environment variable") == [
        [
            "`REGION`",
            "no source, from edge prep.environment-variable.REGION → train.environment-variable.REGION",
            "no",
            "edge prep.environment-variable.REGION → train.environment-variable.REGION",
        ],
        [
            "`SEED`",
            "a literal value; trigger form `train.variable.SEED`",
            "no",
            "`environment-variables` of step 'train' in valohai.yaml",
        ],
    ]
    system = re.search(r"Valohai's system variables: (.*)\.$", doc, re.MULTILINE)
    assert system, doc
    assert {"VH_OUTPUTS_DIR", "VH_EXECUTION_ID", "VH_JOB_ID"} <= set(
        system.group(1).replace("`", "").split(", ")
    )
    assert '"1"' not in doc.split("| environment variable |", 1)[1]  # names and sources, never a value


def test_task_doc_never_shows_environment_values(tmp_path: Path) -> None:
    docs = _docs(tmp_path)
    assert "`API_TOKEN`" in docs["prep"] and "`REGION`" in docs["prep"]
    assert all(SECRET not in doc for doc in docs.values())


def test_shebang_and_backticks_keep_the_script_intact(tmp_path: Path) -> None:
    doc = _docs(tmp_path)["prep"]
    assert "run as `/bin/bash -eu -c <script>`" in doc  # the #! line picks the interpreter
    assert "\n````\n" in doc  # a fence longer than the ``` inside the script
    assert _code_block(doc) == 'echo "`date`" -n 10\necho ```done```'


def test_a_required_parameter_without_default_shows_the_command_as_written(tmp_path: Path) -> None:
    doc = _docs(tmp_path)["needs"]
    assert _code_block(doc) == "echo {parameters}"
    assert "parameter 'must' is required but has no value" in doc
    assert table_rows(doc, "parameter") == [
        ["must", "integer", "`null`", "trigger form `needs.parameter.must`"]
    ]


def test_deployment_task_doc_names_deployment_endpoints_and_files(tmp_path: Path) -> None:
    doc = _docs(tmp_path)["ship"]
    assert doc.startswith("# ship\n")
    assert "deployment `prod`" in doc and "runs no container" in doc
    assert "Endpoints: `predict`." in doc
    assert "`train.output.model.pkl` → `predict.model`" in doc


def test_example_train_fast_doc_matches_what_its_log_prints() -> None:
    """The command of the doc is the command the run's log shows with the defaults (the example project)."""
    plan = compile_project(REPO_ROOT / "dags" / "example" / "valohai.yaml", project_name="example")
    dag = build_dag(plan, next(p for p in plan.pipelines if p.name == "three-trainings"))
    doc = str(dag.get_task("train-fast").doc_md)
    assert _code_block(doc) == (
        "python train.py --learning_rate=1.0 --epochs=50 '--features=<preprocess.metadata.features>'"
    )
    assert table_rows(doc, "input") == [["dataset", "", "`preprocess.output.train.npz`"]]


# per group: the shape fixtures and valohai-yaml's files; the optional corpus
DOCUMENTED_TASKS = {corpus.FIXTURES: 94, "corpus": 97}


@pytest.mark.parametrize("group", corpus.GROUPS)
def test_every_corpus_node_task_has_a_doc_with_its_command(files: Files, group: str) -> None:
    documented = 0
    for path, plan in corpus.compiled(corpus.group_paths(files, group)):
        dags = {dag.dag_display_name: dag for dag in build_dags(plan).values()}
        for pipeline in plan.pipelines:
            for node in pipeline.nodes:
                doc = str(dags[pipeline.name].get_task(node.task_id).doc_md)
                assert doc.startswith(f"# {node.name.replace('|', chr(92) + '|')}\n"), (path.name, node.name)
                if node.step is None:
                    assert "runs no container" in doc
                else:
                    _code_block(doc)
                documented += 1
    assert documented == DOCUMENTED_TASKS[group]


def test_task_node_doc_counts_its_executions_and_shows_the_first(tmp_path: Path) -> None:
    (tmp_path / "valohai.yaml").write_text(
        textwrap.dedent(
            """\
            - step:
                name: train
                image: busybox
                command: train {parameters}
                parameters:
                  - {name: epochs, type: integer}
                  - {name: lr, type: float, default: 0.5}
            - task:
                name: sweep
                step: train
                parameters:
                  - {name: epochs, style: multiple, rules: {items: [30, 40, 50]}}
            - pipeline:
                name: p
                nodes:
                  - {name: t, type: task, task: sweep}
                edges: []
            """
        )
    )
    plan = compile_project(tmp_path / "valohai.yaml", project_name="sweeps")
    (pipeline,) = plan.pipelines
    dag = build_dag(plan, pipeline)
    doc = str(dag.get_task("t").doc_md)
    assert "A task node: 3 execution(s) from task blueprint `sweep` (grid_search)" in doc
    assert "Shown below: the first, `epochs=30`." in doc
    assert _code_block(doc) == "train --epochs=30 --lr=0.5"
    assert table_rows(doc, "parameter") == [
        ["epochs", "integer", "`30`", "task blueprint `sweep`"],
        ["lr", "float", "`0.5`", "trigger form `t.parameter.lr`"],
    ]
    assert dag.get_task("t__variants").task_display_name == "variants of t"


def test_params_and_docs_made_once_per_plan_are_read_back_from_the_cache_dir(tmp_path: Path) -> None:
    """A DAG processor parses in a fresh process each time: with the plan from the disk cache, the
    Params and task docs come from beside it; an unreadable cache file only costs making them again."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "valohai.yaml").write_text(YAML)
    (project / "valohai-airflow.yaml").write_text(
        "step_dags: false\ntask_dags: false\n"
    )  # the pipeline's DAG only
    cache = tmp_path / "cache"
    plan = compile_project(project / "valohai.yaml")
    fresh = {dag_id: dag for dag_id, dag in build_dags(plan).items()}
    first = build_dags(plan, cache_dir=cache)
    (written,) = cache.glob("parts-*.pickle")
    for dag_id, dag in first.items():
        assert dag.doc_md == fresh[dag_id].doc_md
        assert {t.task_id: t.doc_md for t in dag.tasks} == {t.task_id: t.doc_md for t in fresh[dag_id].tasks}
        assert dag.params.dump() == fresh[dag_id].params.dump()
        assert {k: p.schema for k, p in dag.params.items()} == {
            k: p.schema for k, p in fresh[dag_id].params.items()
        }

    from valohai_airflow.loading import pickle_cache

    ((pipeline_name, (params, (dag_doc, node_docs))),) = pickle_cache.load(written).items()  # type: ignore[union-attr]
    pickle_cache.store(
        written,
        {
            pipeline_name: (
                {"from_the_cache": Param(7, type="integer")},
                ("from the cache", dict.fromkeys(node_docs, "node from the cache")),
            )
        },
    )
    (dag,) = build_dags(plan, cache_dir=cache).values()
    assert dag.doc_md == "from the cache" and {t.doc_md for t in dag.tasks} == {"node from the cache"}
    assert dag.params.dump() == {"from_the_cache": 7}

    # the docs name Airflow's default queue: another one is other docs
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "elsewhere")
        (dag,) = build_dags(plan, cache_dir=cache).values()
    assert "default queue `elsewhere`" in next(iter(dag.tasks)).doc_md
    assert len(list(cache.glob("parts-*.pickle"))) == 2
    next(p for p in cache.glob("parts-*.pickle") if p != written).unlink()

    written.write_bytes(b"not a pickle")
    (dag,) = build_dags(plan, cache_dir=cache).values()
    assert dag.doc_md == dag_doc and dag.doc_md != "from the cache"
    assert dag.params.dump() == {k: p.resolve(suppress_exception=True) for k, p in params.items()}

    (project / "valohai.yaml").write_text(YAML.replace("busybox:1.36", "busybox:1.37"))
    edited = compile_project(project / "valohai.yaml")
    (dag,) = build_dags(edited, cache_dir=cache).values()
    assert "busybox:1.37" in dag.doc_md and len(list(cache.glob("parts-*.pickle"))) == 2


def test_task_doc_shows_the_steps_description_stop_condition_and_mounts(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "valohai.yaml").write_text(
        textwrap.dedent(
            f"""\
            - step:
                name: s
                image: busybox
                command: date
                description: Trains the *model*.
                stop-condition: loss < 0.1
                mounts:
                  - {{source: {tmp_path}/shared, destination: /data, readonly: true}}
            - pipeline:
                name: p
                nodes: [{{name: n, type: execution, step: s}}]
                edges: []
            """
        )
    )
    (tmp_path / "valohai-airflow.yaml").write_text(f"mounts: {{allow: ['{tmp_path}']}}\n")
    plan = compile_project(tmp_path / "valohai.yaml", project_name="keys")
    doc = str(build_dag(plan, plan.pipelines[0]).get_task("n").doc_md)
    assert "\nTrains the *model*.\n" in doc
    assert "Stops when `loss < 0.1` holds over its metadata (stop-condition)" in doc
    assert f"Mounts host folder `{tmp_path}/shared` at `/data` read-only." in doc
