"""Valohai pipelines and steps inside a hand-written Airflow DAG (docs/own-dags.md).

`valohai_learning_rate_chains`: for each learning rate of a list (a trigger-form Param), a preprocess → train chain of the example
project's steps (an Airflow mapped task group), then one compare over every chain's model.
`valohai_checked_three_trainings`: a check before the example's three-trainings pipeline, embedded as a
task group, and a note after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, task, task_group

from valohai_airflow.airflow.step_operator import ValohaiStepOperator, outputs_of
from valohai_airflow.airflow.task_group import ValohaiPipelineTaskGroup

PROJECT = Path(__file__).parent / "example" / "valohai.yaml"


def _check_raw_data() -> None:
    """Stands for a sensor: the training waits for its data."""
    if not (PROJECT.parent / "data" / "points.csv").is_file():
        raise FileNotFoundError("the example's data/points.csv is missing")


def _announce(**context: object) -> str:
    """Stands for a notification after the pipeline."""
    return f"three-trainings finished in run {context['run_id']}"


with DAG(
    dag_id="valohai_learning_rate_chains",
    schedule=None,
    tags=["valohai", "example"],
    params={"learning_rates": Param([0.05, 0.5], type="array", items={"type": "number"})},
    doc_md=__doc__,
) as chains_dag:

    @task
    def learning_rates(**context: Any) -> list[float]:
        """The trigger form's list: one chain per item."""
        return [float(rate) for rate in context["params"]["learning_rates"]]

    @task_group
    def chain(learning_rate: float) -> None:
        preprocess = ValohaiStepOperator(task_id="preprocess", project=PROJECT, step="preprocess")
        ValohaiStepOperator(
            task_id="train",
            project=PROJECT,
            step="train",
            parameters={"learning_rate": learning_rate, "epochs": 20},
            inputs={"dataset": outputs_of(preprocess, "train.npz")},
        )

    chain.expand(learning_rate=learning_rates())
    ValohaiStepOperator(
        task_id="compare",
        project=PROJECT,
        step="compare",
        inputs={
            "models": outputs_of(chains_dag.get_task("chain.train"), "model-*.npz"),
            "dataset": outputs_of(chains_dag.get_task("chain.preprocess"), "test.npz"),
        },
    )

with DAG(
    dag_id="valohai_checked_three_trainings",
    schedule=None,
    tags=["valohai", "example"],
    doc_md=__doc__,
) as checked_dag:
    check = PythonOperator(task_id="check_raw_data", python_callable=_check_raw_data)
    pipeline = ValohaiPipelineTaskGroup(
        project=PROJECT, pipeline="three-trainings", group_id="three_trainings"
    )
    announce = PythonOperator(task_id="announce", python_callable=_announce)
    check >> pipeline >> announce
