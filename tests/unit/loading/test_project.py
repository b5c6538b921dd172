"""compile_project: parse + compile from a file, and the caches that spare Airflow's parse loop."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.spec.diagnostics import Severity, ValohaiSpecError

GOOD = """\
- step:
    name: train
    image: busybox
    command: date
    parameters:
      - {name: epochs, type: integer, default: 5}
- pipeline:
    name: p
    nodes:
      - {name: a, type: execution, step: train}
      - {name: b, type: execution, step: train}
    edges:
      - [a.metadata.e, b.parameter.epochs]
"""


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "my-project"
    folder.mkdir()
    (folder / "valohai.yaml").write_text(GOOD)
    return folder / "valohai.yaml"


def test_plan_carries_project_identity(project: Path) -> None:
    plan = compile_project(project)
    assert plan.name == "my-project"
    assert plan.root == str(project.parent.resolve())
    assert plan.source == str(project.resolve())
    assert len(plan.content_hash) == 64
    assert compile_project(project, project_name="other").name == "other"


def test_symlinked_project_is_spelled_as_reached(project: Path, tmp_path: Path) -> None:
    """Paths in the plan (and so in errors, task docs and the worker's project root) are the ones
    the dags-folder walk gives, a symlinked project's link, with its sidecar read through the link."""
    link = tmp_path / "dags" / "linked"
    link.parent.mkdir()
    link.symlink_to(project.parent, target_is_directory=True)
    (project.parent / "valohai-airflow.yaml").write_text("pipelines:\n  p: {retries: 2}\n")
    plan = compile_project(link / "valohai.yaml")
    assert plan.source == str(link / "valohai.yaml")
    assert plan.root == str(link)
    assert plan.settings.source == str(link / "valohai-airflow.yaml")
    assert plan.settings.pipeline("p").retries == 2
    assert compile_project(project.parent / ".." / "my-project" / "valohai.yaml").source == str(project)


def test_unchanged_file_is_not_compiled_again(project: Path) -> None:
    first = compile_project(project)
    assert compile_project(project) is first
    project.write_text(GOOD.replace("default: 5", "default: 6"))
    second = compile_project(project)
    assert second is not first
    assert second.content_hash != first.content_hash
    assert second.pipelines[0].node("a").step.parameter("epochs").default == 6  # type: ignore[union-attr]


def test_errors_are_cached_too_and_raised_each_time(project: Path) -> None:
    project.write_text(GOOD.replace("b.parameter.epochs", "b.parameter.epoch"))
    for _ in range(2):
        with pytest.raises(ValohaiSpecError) as caught:
            compile_project(project)
        (error,) = caught.value.diagnostics
        assert error.location.file == str(project.resolve())
        assert error.location.line == 13


def test_parse_errors_stop_before_the_plan(project: Path) -> None:
    project.write_text(GOOD.replace("step: train}", "step: train, bogus: 1}", 1))
    with pytest.raises(ValohaiSpecError) as caught:
        compile_project(project)
    assert all(d.severity is Severity.ERROR for d in caught.value.diagnostics)
    assert any("bogus" in d.message for d in caught.value.diagnostics)


def test_disk_cache_is_read_by_a_fresh_process(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    plan = compile_project(project, cache_dir=cache)
    (pickled,) = cache.glob("plan-*.pickle")
    loaded = pickle.loads(pickled.read_bytes())
    assert loaded == plan
    # plan classes pickle as calls of their class: the derived indexes are built again
    pipeline = loaded.pipelines[0]
    assert [pipeline.node(n.name) for n in pipeline.nodes] == list(pipeline.nodes)
    order = [n.name for n in pipeline.nodes]
    assert [e for n in pipeline.nodes for e in pipeline.edges_into(n.name)] == sorted(
        pipeline.edges, key=lambda e: order.index(e.target_node)
    )
    upstreams = {n: sorted({e.source_node for e in pipeline.edges_into(n)}, key=order.index) for n in order}
    assert {n: list(pipeline.upstreams(n)) for n in order} == upstreams
    assert loaded.pipelines[0].nodes[0].location == plan.pipelines[0].nodes[0].location
    # Prove the next (fresh-process) compile reads the pickle: plant a marker in it.
    marked = type(plan)(**{**{f: getattr(plan, f) for f in plan.__dataclass_fields__}, "root": "/from-cache"})
    pickled.write_bytes(pickle.dumps(marked))
    clear_cache()
    assert compile_project(project, cache_dir=cache).root == "/from-cache"


def test_unreadable_disk_cache_is_ignored(project: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    compile_project(project, cache_dir=cache)
    (pickled,) = cache.glob("plan-*.pickle")
    pickled.write_bytes(b"not a pickle")
    clear_cache()
    assert compile_project(project, cache_dir=cache).pipelines[0].name == "p"


def test_cache_dir_that_cannot_be_created_does_not_break_compiling(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert compile_project(project, cache_dir=blocker / "cache").pipelines


def test_warnings_are_reported_when_the_file_is_compiled_not_when_its_plan_is_cached(
    project: Path, tmp_path: Path
) -> None:
    """The loader logs warnings through `report`: once per edit, not on every parse of the folder."""
    project.write_text(GOOD.replace("default: 5}", "default: five}"))
    cache = tmp_path / "cache"
    reported: list[str] = []
    plan = compile_project(project, cache_dir=cache, report=lambda d: reported.append(str(d)))
    assert reported and reported == [str(d) for d in plan.diagnostics]
    assert "five" in reported[0] and f"{project.resolve()}:6:" in reported[0]
    compile_project(project, cache_dir=cache, report=lambda d: reported.append(str(d)))  # in-process
    clear_cache()
    again = compile_project(project, cache_dir=cache, report=lambda d: reported.append(str(d)))  # disk
    assert len(reported) == len(plan.diagnostics)
    assert again.diagnostics == plan.diagnostics  # still on the plan, for lint and the docs
    project.write_text(GOOD.replace("default: 5}", "default: six}"))
    compile_project(project, cache_dir=cache, report=lambda d: reported.append(str(d)))
    assert "six" in reported[-1]
