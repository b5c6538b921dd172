"""Steps and task blueprints as DAGs of their own (plan/standalone.py): their one-node plans, the
sidecar's `step_dags:` / `task_dags:` choice, and triggers that name a step or a blueprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.model import DagKind, NodeKind, Origin, PipelinePlan, ProjectPlan
from valohai_airflow.plan.naming import dag_id_for
from valohai_airflow.spec.diagnostics import ValohaiSpecError

STEPS_ONLY = """\
- step:
    name: train model
    image: busybox
    command: train {parameters}
    environment-variables:
      - {name: MODE, default: fast, description: how to train}
      - {name: TOKEN}
    parameters:
      - {name: epochs, type: integer, default: 5, min: 1, max: 50}
      - {name: rate, type: float, default: 0.1}
    inputs:
      - {name: data, default: [s3://bucket/a.csv, s3://bucket/b.csv]}
- step:
    name: evaluate
    image: busybox
    command: date
- task:
    name: sweep
    step: train model
    type: grid_search
    parameters:
      - {name: rate, style: multiple, rules: {items: [0.1, 0.2, 0.3]}}
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def by_title(project: ProjectPlan) -> dict[str, PipelinePlan]:
    return {p.title: p for p in project.standalone}


def project(tmp_path: Path, sidecar: str | None = None, valohai: str = STEPS_ONLY) -> Path:
    (tmp_path / "valohai.yaml").write_text(valohai)
    if sidecar is not None:
        (tmp_path / "valohai-airflow.yaml").write_text(sidecar)
    return tmp_path / "valohai.yaml"


def errors(path: Path) -> list[str]:
    with pytest.raises(ValohaiSpecError) as info:
        compile_project(path)
    return [
        f"{Path(d.location.file).name}:{d.location.line}:{d.location.column}: {d.message} ({d.hint})"
        for d in info.value.diagnostics
    ]


def test_a_file_without_pipelines_gives_a_plan_per_step_and_blueprint() -> None:
    plan = compile_text(STEPS_ONLY)
    assert plan.pipelines == ()
    assert [(p.kind, p.name) for p in plan.standalone] == [
        (DagKind.STEP, "train model"),
        (DagKind.STEP, "evaluate"),
        (DagKind.TASK, "sweep"),
    ]
    assert plan.dag_plans == plan.standalone


def test_a_step_is_a_one_execution_node_pipeline_with_its_whole_form() -> None:
    step_plan = by_title(compile_text(STEPS_ONLY))['the DAG of step "train model"']
    (node,) = step_plan.nodes
    assert (node.name, node.task_id, node.kind) == (
        "train model",
        "train_model_" + node.task_id[-6:],
        NodeKind.EXECUTION,
    )
    assert node.step is not None and node.step.name == "train model" and step_plan.edges == ()
    assert [(s.name, s.origin, s.conf_key, s.offered) for s in node.sources.parameters] == [
        ("epochs", Origin.RUN_CONF, "train model.parameter.epochs", True),
        ("rate", Origin.RUN_CONF, "train model.parameter.rate", True),
    ]
    assert [(s.conf_key, s.offered) for s in node.sources.inputs] == [("train model.input.data", True)]
    # Valohai's Create-execution form edits the environment variables too (as every node's form)
    assert [(v.name, v.conf_key(node.name), v.offered) for v in node.variables] == [
        ("MODE", "train model.variable.MODE", True),
        ("TOKEN", "train model.variable.TOKEN", True),
    ]


def test_a_blueprint_is_a_one_task_node_pipeline_whose_varied_parameters_are_not_offered() -> None:
    task_plan = by_title(compile_text(STEPS_ONLY))['the DAG of task blueprint "sweep"']
    (node,) = task_plan.nodes
    assert (node.name, node.kind, task_plan.kind) == ("sweep", NodeKind.TASK, DagKind.TASK)
    assert node.blueprint is not None and node.blueprint.name == "sweep"
    assert node.step is not None and node.step.name == "train model"
    assert {s.name: (s.origin, s.offered) for s in node.sources.parameters} == {
        "epochs": (Origin.RUN_CONF, True),
        "rate": (Origin.BLUEPRINT, False),
    }


def test_pipeline_plans_keep_their_environment_from_the_step() -> None:
    plan = compile_text(
        STEPS_ONLY
        + "- pipeline:\n    name: p\n    nodes:\n      - {name: t, type: execution, step: train model}\n    edges: []\n"
    )
    (node,) = plan.pipelines[0].nodes
    assert plan.pipelines[0].kind is DagKind.PIPELINE
    assert [(s.origin, s.offered) for s in node.sources.environment] == [(Origin.DEFAULT, False)] * 2
    assert [v.conf_key(node.name) for v in node.variables] == ["t.variable.MODE", "t.variable.TOKEN"]


def test_dag_ids_of_steps_and_blueprints_cannot_be_a_pipelines() -> None:
    assert dag_id_for("proj", "train", "pipeline") == "proj__train"
    assert dag_id_for("proj", "train", "step") == "proj__step__train"
    assert dag_id_for("proj", "train model", "task").startswith("proj__task__train_model_")


def test_the_sidecar_turns_them_off_or_lists_the_ones_to_show(tmp_path: Path) -> None:
    path = project(tmp_path, "step_dags: false\ntask_dags: false\n")
    assert compile_project(path).standalone == ()
    clear_cache()
    path = project(tmp_path, "step_dags: [evaluate]\n")
    assert [(p.kind, p.name) for p in compile_project(path).standalone] == [
        (DagKind.STEP, "evaluate"),
        (DagKind.TASK, "sweep"),
    ]


def test_an_unknown_name_in_the_choice_is_an_error_at_its_line_with_did_you_mean(tmp_path: Path) -> None:
    path = project(tmp_path, "step_dags:\n  - evaluate\n  - evalute\ntask_dags: [swep]\n")
    assert errors(path) == [
        "valohai-airflow.yaml:3:5: `step_dags:` of valohai-airflow.yaml names step 'evalute', which valohai.yaml "
        'does not have (did you mean "evaluate"?)',
        "valohai-airflow.yaml:4:13: `task_dags:` of valohai-airflow.yaml names task blueprint 'swep', which "
        'valohai.yaml does not have (did you mean "sweep"?)',
    ]


def test_the_choice_must_be_a_flag_or_names(tmp_path: Path) -> None:
    path = project(tmp_path, "step_dags: yes please\n")
    assert errors(path) == [
        "valohai-airflow.yaml:1:12: valohai-airflow.yaml: 'step_dags': must be true, false or a list of names, got 'yes please' (None)"
    ]


TRIGGERS = """\
triggers:
  - title: nightly evaluation
    step: evaluate
    cron: "0 3 * * *"
  - title: weekly sweep
    task: sweep
    cron: "@weekly"
    parameters:
      sweep.parameter.epochs: 7
"""


def test_triggers_may_run_a_step_or_a_blueprint(tmp_path: Path) -> None:
    settings = compile_project(project(tmp_path, TRIGGERS)).settings
    assert [t.target for t in settings.triggers] == [("step", "evaluate"), ("task", "sweep")]
    assert [t.title for t in settings.triggers_for("evaluate", "step")] == ["nightly evaluation"]
    assert settings.triggers_for("evaluate") == ()  # no pipeline of that name


def test_a_trigger_names_exactly_one_target(tmp_path: Path) -> None:
    sidecar = "triggers:\n  - {title: both, step: evaluate, pipeline: p, cron: '@daily'}\n  - {title: none, cron: '@daily'}\n"
    assert errors(project(tmp_path, sidecar)) == [
        "valohai-airflow.yaml:2:5: trigger 'both': trigger 'both' needs exactly one of 'pipeline', 'step' or "
        "'task' (what it runs) (None)",
        "valohai-airflow.yaml:3:5: trigger 'none': trigger 'none' needs exactly one of 'pipeline', 'step' or "
        "'task' (what it runs) (None)",
    ]


def test_trigger_targets_and_parameters_are_checked_against_the_step(tmp_path: Path) -> None:
    sidecar = (
        "step_dags: [evaluate]\n"
        "triggers:\n"
        "  - {title: typo, step: evalute, cron: '@daily'}\n"
        "  - {title: left out, step: train model, cron: '@daily'}\n"
        "  - {title: bad key, task: sweep, cron: '@daily', parameters: {sweep.parameter.epoch: 3}}\n"
        "  - {title: bad value, task: sweep, cron: '@daily', parameters: {sweep.parameter.epochs: 99}}\n"
        "  - {title: varied, task: sweep, cron: '@daily', parameters: {sweep.parameter.rate: 0.5}}\n"
    )
    found = errors(project(tmp_path, sidecar))
    assert found[0] == (
        "valohai-airflow.yaml:3:5: trigger 'typo': valohai.yaml has no step 'evalute' (did you mean \"evaluate\"?)"
    )
    assert found[1] == (
        "valohai-airflow.yaml:4:5: trigger 'left out': step 'train model' has no DAG to run: `step_dags:` of the sidecar "
        "leaves it out (or valohai-airflow lint warns why it cannot run on its own) (add 'train model' to `step_dags:`)"
    )
    assert found[2].startswith(
        "valohai-airflow.yaml:5:5: trigger 'bad key', parameter 'sweep.parameter.epoch': task blueprint 'sweep' "
        "has no such parameter"
    )
    assert found[2].endswith('(did you mean "sweep.parameter.epochs"?)')
    assert found[3].startswith(
        "valohai-airflow.yaml:6:5: trigger 'bad value', parameter 'sweep.parameter.epochs': "
    )
    assert "50" in found[3]
    assert found[4] == (
        "valohai-airflow.yaml:7:5: trigger 'varied', parameter 'sweep.parameter.rate': cannot be set by a "
        "trigger: task blueprint 'sweep' varies it (None)"
    )
    assert len(found) == 5


BLUEPRINTS = """\
- step:
    name: train
    image: busybox
    command: date
    parameters:
      - {name: epochs, type: integer, default: 5}
- task:
    name: empty
    step: train
    type: grid_search
    parameters: []
- task:
    name: used
    step: train
    type: grid_search
    parameters:
      - {name: epochs, style: multiple, rules: {items: [1, 2.5]}}
"""


def test_a_blueprint_that_cannot_run_on_its_own_gets_warnings_and_no_dag() -> None:
    """Valohai's parser lets a blueprint that varies nothing pass (its valid examples have one): the
    file still loads, and lint says why that blueprint has no DAG."""
    plan = compile_text(BLUEPRINTS.split("- task:\n    name: used")[0])
    assert [p.title for p in plan.standalone] == ['the DAG of step "train"']
    (warning,) = plan.diagnostics
    assert warning.message == (
        'task blueprint "empty": task "empty" varies no parameter, so it has no variants: give it `parameters` '
        "(or `parameter-sets` for manual_search); it gets no DAG of its own"
    )
    assert (warning.location.line, warning.location.column) == (8, 5)


def test_a_blueprint_a_pipeline_runs_is_reported_once_by_its_node() -> None:
    text = BLUEPRINTS + (
        "- pipeline:\n    name: p\n    nodes:\n      - {name: n, type: task, task: used}\n    edges: []\n"
    )
    with pytest.raises(ValohaiSpecError) as info:
        compile_text(text)
    assert [d.message for d in info.value.diagnostics] == [
        'pipeline "p": node "n": task blueprint "used" gives parameter "epochs" the value 2.5: 2.5 is not an integer'
    ]


def test_a_blueprint_valid_only_under_a_nodes_override_gets_a_warning_not_a_silent_gap() -> None:
    """The node's override makes `epochs` a float, so the pipeline compiles; on its own the blueprint
    gives 2.5 to an integer: no DAG, and the warning says why (it used to vanish without a word)."""
    text = (
        BLUEPRINTS.split("- task:\n    name: empty")[0]
        + "- task:"
        + BLUEPRINTS.split("- task:")[2]
        + (
            "- pipeline:\n    name: p\n    nodes:\n      - name: n\n        type: task\n        task: used\n"
            "        override:\n          parameters:\n            - {name: epochs, type: float, default: 1.0}\n"
            "    edges: []\n"
        )
    )
    plan = compile_text(text)
    assert [p.title for p in plan.dag_plans] == ['pipeline "p"', 'the DAG of step "train"']
    assert [d.message for d in plan.diagnostics] == [
        'task blueprint "used": task blueprint "used" gives parameter "epochs" the value 2.5: 2.5 is not an '
        "integer; it gets no DAG of its own"
    ]
