"""The loader benchmark's baseline and peer build what the loader builds: the hand-written file
(benchmarks/handwritten.py) and the dag-factory config (benchmarks/dag_factory_peer.py), both
generated from the loader's DAGs and parsed by Airflow's DagBag, give the same DAG ids, tasks of
the same classes with the same plans, dependencies, trigger rules and Params. A baseline that
built less would flatter every ratio of docs/performance.md."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.dag_factory_peer import ENVIRONMENT, write_peer
from benchmarks.handwritten import handwritten_source
from tests.conftest import REPO_ROOT
from tests.support.synthetic import synthetic_yaml


@pytest.fixture
def loader_dags(tmp_path: Path) -> dict[str, Any]:
    """The example project (task node, approval, schedule) and a 30-node synthetic pipeline."""
    from valohai_airflow.airflow import loader

    folder = tmp_path / "dags"
    shutil.copytree(REPO_ROOT / "dags" / "example", folder / "example")
    (folder / "synthetic").mkdir()
    (folder / "synthetic" / "valohai.yaml").write_text(synthetic_yaml(30, 120))
    return loader.load_dags(folder)


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert set(theirs) == set(ours)
    for dag_id, dag in ours.items():
        other = theirs[dag_id]
        tasks, others = {t.task_id: t for t in dag.tasks}, {t.task_id: t for t in other.tasks}
        assert tasks.keys() == others.keys(), dag_id
        for task_id, task in tasks.items():
            copy = others[task_id]
            assert isinstance(copy, type(task)), (dag_id, task_id, type(copy))
            assert copy.upstream_task_ids == task.upstream_task_ids, (dag_id, task_id)
            assert copy.trigger_rule == task.trigger_rule, (dag_id, task_id)
            mapped = type(task).__name__ == "MappedOperator"
            for name in ("node", "pipeline", "project_root", "queue", "retries", "execution_timeout"):
                mine = task.partial_kwargs.get(name) if mapped else getattr(task, name, None)
                copied = copy.partial_kwargs.get(name) if mapped else getattr(copy, name, None)
                assert copied == mine, (dag_id, task_id, name)
        assert other.params.dump() == dag.params.dump(), dag_id
    classes = {type(t).__name__ for dag in ours.values() for t in dag.tasks}
    assert {"ValohaiExecutionOperator", "MappedOperator", "ValohaiVariantsOperator"} <= classes


def _bag(path: Path) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    return dict(bag.dags)


def test_the_hand_written_baseline_builds_the_loaders_dags(
    loader_dags: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "handwritten" / "handwritten_dags.py"
    path.parent.mkdir()
    path.write_text("# airflow DAG\n" + handwritten_source(loader_dags))
    _same(loader_dags, _bag(path))


def test_the_baselines_spell_timestamps_and_fields_set_at_their_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both the hand-written file and the dag-factory config, as in the corpus: a YAML timestamp as a parameter's default (a datetime in the plan) and a task
    blueprint with `parameters: []`, which its validator requires though it equals the default."""
    from valohai_airflow.airflow import loader

    project = tmp_path / "dags" / "dated"
    project.mkdir(parents=True)
    (project / "valohai.yaml").write_text(
        "- step:\n    name: report\n    image: busybox\n    command: echo {parameters}\n"
        "    parameters:\n      - {name: since, type: string, default: 2020-09-02T00:00:00.000000Z}\n"
        "- task: {name: spread, step: report, type: distributed, parameters: [], execution-count: 2}\n"
    )
    dags = loader.load_dags(project.parent)
    assert set(dags) == {"dated__step__report", "dated__task__spread"}
    path = tmp_path / "handwritten" / "handwritten_dags.py"
    path.parent.mkdir()
    path.write_text("# airflow DAG\n" + handwritten_source(dags))
    _same(dags, _bag(path))
    for key, value in ENVIRONMENT.items():
        monkeypatch.setitem(os.environ, key, value)
    peer = tmp_path / "peer" / "dag_factory_dags.py"
    peer.parent.mkdir()
    write_peer(dags, peer)
    _same(dags, _bag(peer))


def test_the_dag_factory_peer_builds_the_loaders_dags(
    loader_dags: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENVIRONMENT.items():
        monkeypatch.setitem(os.environ, key, value)
    path = tmp_path / "peer" / "dag_factory_dags.py"
    path.parent.mkdir()
    write_peer(loader_dags, path)
    _same(loader_dags, _bag(path))
