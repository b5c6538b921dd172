"""A step's and a task blueprint's own DAG (issue 25): ids, names, tags, the Create-execution trigger
form as Params (checked by Airflow's own ParamsDict, as its REST API and form do), and the tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from tests.unit.plan.test_standalone import STEPS_ONLY
from valohai_airflow.airflow.factory import build_dags
from valohai_airflow.airflow.operators import ValohaiExecutionOperator
from valohai_airflow.airflow.variants import ValohaiVariantsOperator
from valohai_airflow.loading.project import clear_cache, compile_project


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def dags(tmp_path: Path, sidecar: str | None = None) -> dict[str, object]:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "valohai.yaml").write_text(STEPS_ONLY)
    if sidecar is not None:
        (folder / "valohai-airflow.yaml").write_text(sidecar)
    return dict(build_dags(compile_project(folder / "valohai.yaml")))


def test_a_file_without_pipelines_gives_a_dag_per_step_and_blueprint(tmp_path: Path) -> None:
    built = dags(tmp_path)
    train_id = next(i for i in built if i.startswith("team__step__train_model_"))
    assert sorted(built) == sorted([train_id, "team__step__evaluate", "team__task__sweep"])
    step_dag = built[train_id]
    assert step_dag.dag_display_name == "train model"  # type: ignore[attr-defined]
    assert step_dag.tags == {"valohai", "valohai-step", "team"}  # type: ignore[attr-defined]
    assert step_dag.schedule is None  # type: ignore[attr-defined]  # manual runs only
    assert step_dag.description == "Valohai step 'train model' of team"  # type: ignore[attr-defined]
    (task,) = step_dag.tasks  # type: ignore[attr-defined]
    assert isinstance(task, ValohaiExecutionOperator)
    assert (task.task_id, task.task_display_name) == (step_dag.tasks[0].task_id, "train model")  # type: ignore[attr-defined]
    assert {link.name for link in task.operator_extra_links} >= {"Outputs", "Metadata (metadata.jsonl)"}
    assert "Valohai step run on its own" in step_dag.doc_md  # type: ignore[attr-defined]
    assert "train {parameters}" not in (task.doc_md or "") and "train --epochs=5 --rate=0.1" in (
        task.doc_md or ""
    )
    assert built["team__task__sweep"].tags == {"valohai", "valohai-task", "team"}  # type: ignore[attr-defined]


def test_the_trigger_form_is_valohais_create_execution_form(tmp_path: Path) -> None:
    step_dag = next(d for i, d in dags(tmp_path).items() if i.startswith("team__step__train_model_"))
    params = step_dag.params  # type: ignore[attr-defined]
    schemas = {key: params.get_param(key).schema for key in params}
    assert set(schemas) == {
        "train model.parameter.epochs",
        "train model.parameter.rate",
        "train model.input.data",
        "train model.variable.MODE",
        "train model.variable.TOKEN",
    }
    epochs = schemas["train model.parameter.epochs"]
    assert (epochs["type"], epochs["minimum"], epochs["maximum"], epochs["section"]) == (
        "integer",
        1,
        50,
        "train model",
    )
    assert params["train model.parameter.epochs"] == 5
    assert params["train model.input.data"] == ["s3://bucket/a.csv", "s3://bucket/b.csv"]
    assert schemas["train model.input.data"]["type"] == "array"
    assert params["train model.variable.MODE"] == "fast"
    assert params.get_param("train model.variable.MODE").description.startswith(
        "how to train. From a literal"
    )
    assert params["train model.variable.TOKEN"] is None


def test_a_wrong_typed_value_is_refused_naming_the_parameter(tmp_path: Path) -> None:
    """What Airflow's REST API does with a run conf (a 400 with this message): the e2e test triggers it."""
    step_dag = next(d for i, d in dags(tmp_path).items() if i.startswith("team__step__train_model_"))
    params = ParamsDict(step_dag.params)  # type: ignore[attr-defined]
    with pytest.raises(ParamValidationError, match=r"train model\.parameter\.epochs: 'many' is not of type"):
        params["train model.parameter.epochs"] = "many"


def test_a_blueprint_dag_runs_its_variants_as_mapped_executions(tmp_path: Path) -> None:
    sweep = dags(tmp_path)["team__task__sweep"]
    variants, executions = sweep.tasks  # type: ignore[attr-defined]
    assert isinstance(variants, ValohaiVariantsOperator) and variants.task_id == "sweep__variants"
    assert executions.task_id == "sweep" and executions.upstream_task_ids == {"sweep__variants"}
    assert set(sweep.params) == {  # type: ignore[attr-defined]
        "sweep.parameter.epochs",  # not varied: in the form
        "sweep.input.data",
        "sweep.variable.MODE",
        "sweep.variable.TOKEN",
    }


@pytest.mark.parametrize("cached", [False, True])
def test_a_worker_builds_only_the_dag_it_runs(tmp_path: Path, cached: bool) -> None:
    """Without the docs the DAG processor cached (a fresh cache dir, or none) as with them."""
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "valohai.yaml").write_text(STEPS_ONLY)
    project = compile_project(folder / "valohai.yaml")
    cache_dir = tmp_path / "cache"
    if cached:
        build_dags(project, cache_dir=cache_dir)  # the DAG processor's parse
    built = build_dags(project, cache_dir=cache_dir if cached else None, only="team__step__evaluate")
    assert list(built) == ["team__step__evaluate"]
    assert "evaluate" in (built["team__step__evaluate"].tasks[0].doc_md or "")  # type: ignore[attr-defined]
    assert len(build_dags(project, cache_dir=cache_dir)) == 3  # a partial render is never cached


def test_the_sidecar_chooses_which(tmp_path: Path) -> None:
    assert sorted(dags(tmp_path, "step_dags: [evaluate]\ntask_dags: false\n")) == ["team__step__evaluate"]


def test_a_trigger_schedules_a_step_dag_with_its_parameters(tmp_path: Path) -> None:
    sidecar = (
        "triggers:\n  - {title: nightly, step: evaluate, cron: '0 3 * * *', timezone: Europe/Helsinki}\n"
    )
    built = dags(tmp_path, sidecar)
    timetable = built["team__step__evaluate"].timetable  # type: ignore[attr-defined]
    assert (type(timetable).__name__, timetable.expression, str(timetable.timezone)) == (
        "CronTriggerTimetable",
        "0 3 * * *",
        "Europe/Helsinki",
    )
    assert built["team__task__sweep"].schedule is None  # type: ignore[attr-defined]
