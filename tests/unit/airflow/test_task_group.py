"""ValohaiPipelineTaskGroup: a pipeline of valohai.yaml inside a hand-written DAG holds the same
tasks, wiring, docs, links and Params as the pipeline's generated DAG, behind the group's prefix."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG, Param

from valohai_airflow.airflow.factory import build_dags
from valohai_airflow.airflow.task_group import REUSE_KEYS, ValohaiPipelineTaskGroup
from valohai_airflow.airflow.task_ids import sibling_task_id
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.loading.project import clear_cache, compile_project

EXAMPLE = Path(__file__).resolve().parents[3] / "dags" / "example" / "valohai.yaml"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _generated(pipeline: str) -> DAG:
    dags = build_dags(compile_project(EXAMPLE))
    return next(d for d in dags.values() if d.dag_display_name == pipeline)


@pytest.mark.parametrize("pipeline", ["three-trainings", "learning-rate-sweep"])
def test_the_group_holds_the_generated_dags_tasks_behind_its_prefix(pipeline: str) -> None:
    generated = _generated(pipeline)
    with DAG("hand_written", params={"threshold": Param(0.5)}) as dag:
        group = ValohaiPipelineTaskGroup(project=EXAMPLE, pipeline=pipeline, group_id="ml")
    assert sorted(dag.task_ids) == sorted(f"ml.{t}" for t in generated.task_ids)
    for task in generated.tasks:
        mine = dag.get_task(f"ml.{task.task_id}")
        assert type(mine) is type(task)
        assert mine.upstream_task_ids == {f"ml.{t}" for t in task.upstream_task_ids}
        assert mine.doc_md == task.doc_md
        assert [link.name for link in mine.operator_extra_links] == [
            link.name for link in task.operator_extra_links
        ]
    assert set(generated.params) >= REUSE_KEYS  # both example pipelines have several nodes
    own_form = set(generated.params) - REUSE_KEYS  # reusing an earlier run's nodes: generated DAGs only
    assert set(dag.params) == own_form | {"threshold"}
    assert all(dag.params[k] == generated.params[k] for k in own_form)
    assert set(group.node_tasks) == {
        n for n in (t.task_display_name for t in generated.tasks) if "variants" not in n
    }


def test_a_param_the_dag_has_already_is_an_error_naming_it() -> None:
    dag = DAG("hand_written", params={"train.parameter.epochs": Param(3)})
    with dag, pytest.raises(ValohaiAirflowError) as error:
        ValohaiPipelineTaskGroup(project=EXAMPLE, pipeline="learning-rate-sweep")
    assert "train.parameter.epochs" in str(error.value) and "'learning-rate-sweep'" in str(error.value)


def test_an_unknown_pipeline_is_an_error_naming_the_file_and_its_pipelines() -> None:
    with DAG("hand_written"), pytest.raises(ValohaiAirflowError) as error:
        ValohaiPipelineTaskGroup(project=EXAMPLE, pipeline="nope")
    text = str(error.value)
    assert str(EXAMPLE) in text and "'nope'" in text and "'three-trainings'" in text


def test_sibling_task_ids_keep_the_group_prefix() -> None:
    assert sibling_task_id(SimpleNamespace(task_id="train"), "preprocess") == "preprocess"
    assert sibling_task_id(SimpleNamespace(task_id="outer.ml.train"), "preprocess") == "outer.ml.preprocess"


def test_stop_actions_reach_only_the_pipelines_own_tasks() -> None:
    """What on-error and stop actions may skip: a group's tasks, not the DAG author's, nor a step
    operator's neighbours; in a pipeline's own DAG, every task."""
    from airflow.providers.standard.operators.empty import EmptyOperator

    from valohai_airflow.airflow.step_operator import ValohaiStepOperator
    from valohai_airflow.airflow.task_ids import pipeline_task_ids

    with DAG("hand_written") as dag:
        EmptyOperator(task_id="notify")
        ValohaiPipelineTaskGroup(project=EXAMPLE, pipeline="learning-rate-sweep", group_id="ml")
        step = ValohaiStepOperator(task_id="alone", project=EXAMPLE, step="train")
    assert sorted(pipeline_task_ids(dag.get_task("ml.compare"))) == [
        "ml.compare",
        "ml.preprocess",
        "ml.train",
        "ml.train__variants",
    ]
    assert pipeline_task_ids(step) == ["alone"]
    generated = _generated("learning-rate-sweep")
    assert sorted(pipeline_task_ids(generated.get_task("compare"))) == sorted(generated.task_ids)
