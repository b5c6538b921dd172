"""Projects in a dags folder: their names, and the folders whose names would share DAG ids."""

from __future__ import annotations

from pathlib import Path

from valohai_airflow.loading.dags_folder import name_clashes, project_name_for


def test_folders_that_spell_one_project_name_clash_with_each_other() -> None:
    dags = Path("/dags")
    found = [
        dags / f / "valohai.yaml" for f in ("team/churn", "team__churn", "team", "churn", "x/team__churn")
    ]
    names = {path: project_name_for(path, dags) for path in found}
    assert name_clashes(names) == {found[0]: [found[1]], found[1]: [found[0]]}
