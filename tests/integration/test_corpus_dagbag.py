"""A whole group of files in one real dags folder, parsed by Airflow's own DagBag through the loader file.

Two groups (tests/support/corpus.py): the shape fixtures with valohai-yaml's sdist files, which every
clone has, and the optional corpus.

Every file that compiles must give one DAG per pipeline whose tasks and dependencies are exactly the
nodes and edges that valohai-yaml's own `PipelineConverter` reads from the same text, and one DAG per
step and per task blueprint (run on their own, as on Valohai; a blueprint that cannot run on its own
has a lint warning saying so instead); every file that does not compile must give one error DAG that
names a line, and must not hide any other project.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import valohai_yaml
from airflow.serialization.serialized_objects import DagSerialization
from valohai_yaml.pipelines.conversion import PipelineConverter

from tests.integration.conftest import add_project, dag_bag
from tests.support import cases, corpus
from tests.support.cases import Files
from valohai_airflow.loading.project import compile_project
from valohai_airflow.plan.naming import APPROVAL_SUFFIX, VARIANTS_SUFFIX, dag_id_for
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.parse import parse_text


def _project_name(label: str) -> str:
    """A folder name that is already a valid Airflow id, so the expected dag ids can be written out."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", label.removesuffix(".yaml").replace("/", "__"))


def _projects(files: Files, group: str) -> dict[str, Path]:
    """Project name → file; a fixture's name says where it is from (`shapes__…`, `valohai-yaml__…`)."""
    if group == corpus.FIXTURES:
        chosen = [(f"{c.source}__{c.name}", c) for c in cases.shapes() + cases.upstream()]
    else:
        chosen = [(c.name, c) for c in cases.corpus()]
    return {_project_name(label): files.path(case) for label, case in chosen}


@dataclass
class Corpus:
    good: dict[str, Path] = field(default_factory=dict)  # project name → file
    bad: dict[str, Path] = field(default_factory=dict)


def _split(projects: dict[str, Path]) -> Corpus:
    split = Corpus()
    for name, path in projects.items():
        try:
            compile_project(path)
        except ValohaiSpecError:
            split.bad[name] = path
        else:
            split.good[name] = path
    return split


def _reference(text: str) -> dict[str, dict[str, Any]] | None:
    """valohai-yaml's view of every pipeline; None when valohai-yaml rejects the whole file."""
    try:
        config = valohai_yaml.parse(text)
    except Exception:
        return None
    converted: dict[str, dict[str, Any]] = {}
    for pipeline in config.pipelines.values():
        try:
            converted[pipeline.name] = dict(
                PipelineConverter(config=config, commit_identifier="x").convert_pipeline(pipeline)
            )
        except Exception:
            continue  # valohai-yaml cannot convert it: counted as skipped by the caller
    return converted


def _kind(dag: Any) -> str:
    """What a DAG runs, by its tags: a step, a task blueprint, or a pipeline."""
    return next((kind for kind in ("step", "task") if f"valohai-{kind}" in dag.tags), "pipeline")


def _defined(path: Path) -> tuple[set[str], set[str]]:
    """The steps and task blueprints the file defines, as valohai-yaml reads them (our own parser's
    view where valohai-yaml refuses the whole file)."""
    try:
        config = valohai_yaml.parse(path.read_text())
    except Exception:  # valohai-yaml's own error types vary
        ours = parse_text(path.read_bytes(), str(path)).config
        assert ours is not None
        return set(ours.steps), set(ours.tasks)
    return set(config.steps), set(config.tasks)


def _ours(task_id: str) -> bool:
    """Extra tasks of ours: `require-approval` gates, and a task node's variants task."""
    return task_id.endswith((APPROVAL_SUFFIX, VARIANTS_SUFFIX))


def _node_tasks(dag: Any) -> list[Any]:
    """The tasks that are pipeline nodes."""
    return [task for task in dag.tasks if not _ours(task.task_id)]


def _dependencies(dag: Any) -> set[tuple[str, str]]:
    """Node → node dependencies, looking through approval gates (upstream → gate → node) and
    variants tasks (upstream → variants → task node)."""

    def downstream_nodes(task: Any) -> list[Any]:
        found = []
        for task_id in task.downstream_task_ids:
            downstream = dag.get_task(task_id)
            found += downstream_nodes(downstream) if _ours(task_id) else [downstream]
        return found

    return {
        (task.task_display_name, downstream.task_display_name)
        for task in _node_tasks(dag)
        for downstream in downstream_nodes(task)
    }


@pytest.mark.parametrize("group", corpus.GROUPS)
def test_every_corpus_file_in_one_dagbag(dags_folder: Path, files: Files, group: str) -> None:
    projects = _projects(files, group)
    split = _split(projects)
    assert len(split.good) + len(split.bad) == len(projects)
    for name, path in {**split.good, **split.bad}.items():
        add_project(dags_folder, name, path)

    started = time.perf_counter()
    bag = dag_bag(dags_folder)
    parse_seconds = time.perf_counter() - started
    assert bag.import_errors == {}
    for dag in bag.dags.values():  # what the dag processor stores for the scheduler and the web UI
        DagSerialization.from_dict(DagSerialization.to_dict(dag))

    by_project: dict[str, list[Any]] = defaultdict(list)
    for dag in bag.dags.values():
        (project,) = set(dag.tags) - {"valohai", "valohai-error", "valohai-step", "valohai-task"}
        by_project[project].append(dag)
    plans = {name: compile_project(path) for name, path in split.good.items()}
    with_pipelines = {name for name, plan in plans.items() if plan.pipelines}
    assert set(by_project) == {name for name, plan in plans.items() if plan.dag_plans} | set(split.bad)

    standalone = blueprints_left_out = 0
    for name, path in split.good.items():
        plan = plans[name]
        own = {(_kind(dag), dag.dag_display_name): dag for dag in by_project.get(name, [])}
        assert len(own) == len(by_project.get(name, [])), name
        steps = {p.name for p in plan.standalone if p.kind.value == "step"}
        tasks = {p.name for p in plan.standalone if p.kind.value == "task"}
        defined_steps, defined_tasks = _defined(path)
        assert {n for k, n in own if k == "step"} == steps == defined_steps, name
        assert {n for k, n in own if k == "task"} == tasks, name
        left_out = {  # each with its warning (`task blueprint "x": …; it gets no DAG of its own`)
            d.message.split('"')[1]
            for d in plan.diagnostics
            if d.message.endswith("it gets no DAG of its own")
        }
        assert tasks | left_out == defined_tasks and not tasks & left_out, name
        blueprints_left_out += len(left_out)
        for kind, names in (("step", steps), ("task", tasks)):
            for step_name in names:
                dag = own[(kind, step_name)]
                assert dag.dag_id == dag_id_for(name, step_name, kind), (name, step_name)
                assert dag.schedule is None and dag.tasks, (name, step_name)
                standalone += 1

    pipelines = compared = 0
    skipped: list[str] = []
    for name, path in split.good.items():
        plan = compile_project(path)
        pipeline_dags = [dag for dag in by_project.get(name, []) if _kind(dag) == "pipeline"]
        dags = {dag.dag_display_name: dag for dag in pipeline_dags}
        assert len(dags) == len(pipeline_dags), name
        assert set(dags) == {p.name for p in plan.pipelines}, name
        assert not any(dag.dag_id.startswith("valohai_error__") for dag in dags.values()), name
        reference = _reference(path.read_text())
        for pipeline in plan.pipelines:
            pipelines += 1
            dag = dags[pipeline.name]
            assert dag.dag_id == dag_id_for(name, pipeline.name)
            converted = None if reference is None else reference.get(pipeline.name)
            if converted is None:
                skipped.append(f"{name}: {pipeline.name}")
                continue
            compared += 1
            where = f"{name}: pipeline {pipeline.name!r}"
            display_names = sorted(task.task_display_name for task in _node_tasks(dag))
            assert display_names == sorted(node["name"] for node in converted["nodes"]), where
            expected = {
                (edge["source_node"], edge["target_node"]) for edge in corpus.edges_that_act(converted)
            }
            assert _dependencies(dag) == expected, where

    for name in split.bad:
        dags = by_project[name]
        assert [dag.dag_id for dag in dags] == [f"valohai_error__{name}"], name
        assert re.search(rf"(^|/){re.escape(name)}/valohai\.yaml:\d+:\d+: error: ", dags[0].description), (
            name,
            dags[0].description,
        )

    print(
        f"\n{group}: {len(split.good) + len(split.bad)} files, {len(split.good)} compile, "
        f"{len(with_pipelines)} of them with pipelines, {len(split.bad)} error DAGs; {pipelines} pipelines → {pipelines} DAGs, "
        f"{standalone} step and blueprint DAGs ({blueprints_left_out} blueprints left out, with a warning), {compared} compared "
        f"with PipelineConverter, {len(skipped)} skipped ({'; '.join(skipped)}); "
        f"{len(bag.dags)} DAGs in the bag, parsed in {parse_seconds:.1f} s"
    )
    assert len(bag.dags) == pipelines + standalone + len(split.bad)
    assert compared > 0 and compared + len(skipped) == pipelines
