"""Projects in a dags folder: their names, and the folders whose names would share DAG ids."""

from __future__ import annotations

from pathlib import Path

from valohai_airflow.loading.dags_folder import dag_id_clashes, name_clashes, project_name_for
from valohai_airflow.plan.naming import dag_id_for


def test_folders_that_spell_one_project_name_clash_with_each_other() -> None:
    dags = Path("/dags")
    found = [
        dags / f / "valohai.yaml" for f in ("team/churn", "team__churn", "team", "churn", "x/team__churn")
    ]
    names = {path: project_name_for(path, dags) for path in found}
    assert name_clashes(names) == {found[0]: [found[1]], found[1]: [found[0]]}


def test_step_and_task_dag_ids_take_part_in_the_clash_check() -> None:
    """Project `a` with step `x` and project `a/step` (named `a__step`) with pipeline `x` would both
    own `a__step__x`; a pipeline named `step__y` would take step `y`'s DAG id in its own project."""
    a, a_step, other = Path("a/valohai.yaml"), Path("a/step/valohai.yaml"), Path("b/valohai.yaml")
    ids = {
        a: [
            dag_id_for("a", "p"),
            dag_id_for("a", "x", "step"),
            dag_id_for("a", "step__y"),
            dag_id_for("a", "y", "step"),
        ],
        a_step: [dag_id_for("a__step", "x")],
        other: [dag_id_for("b", "x", "step"), dag_id_for("b", "x", "task"), dag_id_for("b", "x")],
    }
    assert dag_id_clashes(ids) == {
        a: ["a__step__x (also a/step/valohai.yaml)", "a__step__y (also this project)"],
        a_step: ["a__step__x (also a/valohai.yaml)"],
    }
