"""Projects in a dags folder: a folder holding a valohai.yaml is a project named after its path."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from valohai_airflow.plan.naming import project_dag_prefix

VALOHAI_YAML = "valohai.yaml"


def valohai_yamls(paths: Iterable[str | Path]) -> list[Path]:
    """The valohai.yaml files among `paths` (a listing of a folder), in a stable order."""
    return sorted(Path(p) for p in paths if os.path.basename(p) == VALOHAI_YAML)  # a Path only for those


def project_name_for(valohai_yaml: Path, dags_folder: Path) -> str:
    """The folder path relative to the dags folder, `/` → `__` (the dags folder's own name at the top),
    as the walk of the dags folder names it: a symlinked project is named by its link."""
    try:
        relative = valohai_yaml.parent.relative_to(dags_folder)
    except ValueError:  # not spelled below it (e.g. one path relative, the other absolute)
        relative = valohai_yaml.parent.resolve().relative_to(dags_folder.resolve())
    return relative.as_posix().replace("/", "__") if relative.parts else dags_folder.resolve().name


def name_clashes(names: Mapping[Path, str]) -> dict[Path, list[Path]]:
    """Projects that would share DAG ids (two folders with one name, `team/churn` and `team__churn`,
    or names whose ids meet in the rare hash collision), each with the others it clashes with.

    None of them may have the name: whichever loaded first would lose its DAGs and run history to
    a newcomer that sorts before it, so every one of them becomes an error instead."""
    by_prefix: dict[str, list[Path]] = {}
    for valohai_yaml, name in names.items():
        by_prefix.setdefault(project_dag_prefix(name), []).append(valohai_yaml)
    return {
        path: [other for other in group if other != path]
        for group in by_prefix.values()
        if len(group) > 1
        for path in group
    }


def dag_id_clashes(dag_ids: Mapping[Path, Sequence[str]]) -> dict[Path, list[str]]:
    """Per project (by its valohai.yaml), each of its DAG ids that another project, or another of its own
    DAGs, also has: a pipeline, a step's DAG (`<project>__step__<step>`) or a blueprint's
    (`<project>__task__<blueprint>`). Project `a` with step `x` meets project `a/step` with pipeline `x`;
    a pipeline named `step__x` meets step `x` of its own project. Such projects become errors."""
    owners: dict[str, list[Path]] = {}
    for valohai_yaml, ids in dag_ids.items():
        for dag_id in ids:
            owners.setdefault(dag_id, []).append(valohai_yaml)
    clashes: dict[Path, list[str]] = {}
    for valohai_yaml, ids in dag_ids.items():
        taken = sorted(
            f"{dag_id} (also {', '.join(str(o) for o in dict.fromkeys(owners[dag_id]) if o != valohai_yaml) or 'this project'})"
            for dag_id in dict.fromkeys(ids)
            if len(owners[dag_id]) > 1
        )
        if taken:
            clashes[valohai_yaml] = taken
    return clashes
