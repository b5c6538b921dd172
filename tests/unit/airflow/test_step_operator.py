"""ValohaiStepOperator: the DAG author's parameters and inputs are checked when the DAG is parsed,
with errors naming step, parameter (input) and value; otherwise it is the step's generated node."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG, task_group

from valohai_airflow.airflow.factory import build_dags
from valohai_airflow.airflow.step_operator import StepOperatorError, ValohaiStepOperator, outputs_of
from valohai_airflow.loading.project import clear_cache, compile_project

EXAMPLE = Path(__file__).resolve().parents[3] / "dags" / "example" / "valohai.yaml"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _error(**arguments: object) -> str:
    with DAG("hand_written"), pytest.raises(StepOperatorError) as error:
        ValohaiStepOperator(task_id="t", project=EXAMPLE, **arguments)  # type: ignore[arg-type]
    return str(error.value)


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"epochs": "many"}, ["step 'train'", "'epochs'", "'many'", "not an integer"]),
        ({"epochs": 0}, ["step 'train'", "'epochs'", "0", "minimum"]),
        ({"learning_rate": [0.1, 0.2]}, ["step 'train'", "'learning_rate'", "single value"]),
        ({"epoch": 3}, ["step 'train' has no parameter 'epoch'", 'did you mean "epochs"']),
    ],
)
def test_a_bad_parameter_fails_the_parse_naming_step_parameter_and_value(
    parameters: dict[str, object], expected: list[str]
) -> None:
    text = _error(step="train", parameters=parameters)
    assert all(part in text for part in expected), text


def test_bad_inputs_and_steps_fail_the_parse_naming_them() -> None:
    assert "step 'train' has no input 'data'" in _error(step="train", inputs={"data": "x.csv"})
    text = _error(step="train", inputs={"dataset": 3})
    assert "step 'train', input 'dataset': value 3" in text
    text = _error(step="trian")
    assert "no step 'trian'" in text and 'did you mean "train"' in text and str(EXAMPLE) in text


def test_it_is_the_steps_generated_node_with_the_authors_values() -> None:
    generated = next(
        d
        for d in build_dags(compile_project(EXAMPLE)).values()
        if d.dag_id.startswith("example__step__train")
    )
    (node_task,) = generated.tasks
    with DAG("hand_written") as dag:
        upstream = ValohaiStepOperator(task_id="prep", project=EXAMPLE, step="preprocess")
        train = ValohaiStepOperator(
            task_id="train",
            project=EXAMPLE,
            step="train",
            parameters={"epochs": 7},
            inputs={"dataset": outputs_of(upstream, "train.npz")},
        )
        plain = ValohaiStepOperator(task_id="plain", project=EXAMPLE, step="train")
    assert train.upstream_task_ids == {"prep"}  # wired by the outputs it reads
    assert [link.name for link in train.operator_extra_links] == [
        link.name for link in node_task.operator_extra_links
    ]
    assert plain.doc_md == node_task.doc_md  # the defaults: the step DAG's node doc
    assert "--epochs=7" in (train.doc_md or "") and "--epochs=7" not in (plain.doc_md or "")
    assert (train.image, train.node, dag.get_task("train")) == (node_task.image, node_task.node, train)


def test_a_mapped_groups_argument_is_accepted_at_parse_time() -> None:
    with DAG("hand_written") as dag:

        @task_group
        def chain(rate: float) -> None:
            ValohaiStepOperator(
                task_id="train", project=EXAMPLE, step="train", parameters={"learning_rate": rate}
            )

        chain.expand(rate=[0.1, 1.0])
    assert dag.get_task("chain.train").get_closest_mapped_task_group() is not None
