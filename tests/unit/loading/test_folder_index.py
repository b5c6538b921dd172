"""The folder index: an unchanged project is served by its stat, any change to it is compiled again."""

from __future__ import annotations

import dataclasses
import os
import pickle
import time
from pathlib import Path

import pytest

from valohai_airflow.loading import folder_index as folder_index_module
from valohai_airflow.loading.folder_index import RACY_NS
from valohai_airflow.loading.project import clear_cache, compile_project, folder_index
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.sidecar import SIDECAR_NAME

GOOD = """\
- step: {name: train, image: busybox, command: date}
- pipeline:
    name: p
    nodes:
      - {name: a, type: execution, step: train}
    edges: []
"""
HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _write_old(path: Path, text: str, mtime_ns: int = HOUR_AGO_NS) -> None:
    """As a checkout that has been there a while: past the racy window, so its stat is trusted."""
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _parse(dags: Path, cache: Path, *, complete: bool = True) -> dict[str, object]:
    """One DAG processor parse: a fresh process (no in-process plans), the index from disk."""
    clear_cache()
    index = folder_index(cache, dags)
    assert index is not None
    plans: dict[str, object] = {}
    for valohai_yaml in sorted(dags.glob("*/valohai.yaml")):
        try:
            plans[valohai_yaml.parent.name] = compile_project(valohai_yaml, cache_dir=cache, index=index)
        except ValohaiSpecError as error:
            plans[valohai_yaml.parent.name] = error
    index.save(complete=complete)
    return plans


def _entries(cache: Path) -> dict[str, tuple[object, str, str, bytes | None, dict[str, bytes]]]:
    (written,) = cache.glob("index-*.pickle")
    entries: dict[str, tuple[object, str, str, bytes | None, dict[str, bytes]]] = pickle.loads(
        written.read_bytes()
    )
    return entries


def _plant_marker(cache: Path, project: Path) -> None:
    """Rewrite the project's inline plan with root "/from-index": seen only if the index serves it."""
    (written,) = cache.glob("index-*.pickle")
    entries = _entries(cache)
    stamp, name, content_hash, pickled, attachments = entries[str(project)]
    assert pickled is not None
    marked = dataclasses.replace(pickle.loads(pickled), root="/from-index")
    entries[str(project)] = (stamp, name, content_hash, pickle.dumps(marked), attachments)
    written.write_bytes(pickle.dumps(entries))


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    for name in ("one", "two"):
        (folder / name).mkdir(parents=True)
        _write_old(folder / name / "valohai.yaml", GOOD)
    return folder


def test_unchanged_project_is_served_from_the_index(dags: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _parse(dags, cache)
    assert set(_entries(cache)) == {str(dags / "one" / "valohai.yaml"), str(dags / "two" / "valohai.yaml")}
    assert not list(cache.glob("plan-*.pickle"))  # held inline by the index: no file of their own
    _plant_marker(cache, dags / "one" / "valohai.yaml")
    again = _parse(dags, cache)
    assert again["one"].root == "/from-index"  # type: ignore[attr-defined]
    assert again["two"] == first["two"]


@pytest.mark.parametrize(
    "change",
    [
        "edited",  # new content and mtime
        "same-size-same-mtime",  # only ctime tells (an editor that restores the mtime)
        "sidecar-added",
        "replaced",  # a new inode, as git checkout writes it
    ],
)
def test_any_change_to_the_project_files_compiles_again(dags: Path, tmp_path: Path, change: str) -> None:
    cache = tmp_path / "cache"
    project = dags / "one" / "valohai.yaml"
    _parse(dags, cache)
    _plant_marker(cache, project)
    time.sleep(0.01)  # a ctime the clock's tick can tell from the first write's
    if change == "edited":
        _write_old(project, GOOD.replace("name: a,", "name: b,"), HOUR_AGO_NS + 10**9)
    elif change == "same-size-same-mtime":
        _write_old(project, GOOD.replace("name: a,", "name: b,"))
    elif change == "sidecar-added":
        _write_old(project.parent / SIDECAR_NAME, "pipelines: {}\n")
    else:
        replacement = project.parent / "new.yaml"
        _write_old(replacement, GOOD)
        replacement.replace(project)
    plan = _parse(dags, cache)["one"]
    assert plan.root == str(project.parent)  # type: ignore[attr-defined]
    if change in ("edited", "same-size-same-mtime"):
        assert [n.name for n in plan.pipelines[0].nodes] == ["b"]  # type: ignore[attr-defined]
    _plant_marker(cache, project)  # and the new stat is indexed in its turn
    assert _parse(dags, cache)["one"].root == "/from-index"  # type: ignore[attr-defined]


def test_a_file_modified_within_the_racy_window_is_read_every_time(dags: Path, tmp_path: Path) -> None:
    """Within one clock tick a second write of the same size keeps the stat: not trusted yet."""
    cache = tmp_path / "cache"
    project = dags / "one" / "valohai.yaml"
    recent = time.time_ns() - RACY_NS // 2
    _write_old(project, GOOD, recent)
    _parse(dags, cache)
    assert str(project) not in _entries(cache)
    _write_old(project, GOOD.replace("name: a,", "name: b,"), recent)  # same size, same mtime
    plan = _parse(dags, cache)["one"]
    assert [n.name for n in plan.pipelines[0].nodes] == ["b"]  # type: ignore[attr-defined]


def test_a_complete_parse_drops_removed_projects_and_a_partial_one_keeps_them(
    dags: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    _parse(dags, cache)
    two = dags / "two" / "valohai.yaml"
    moved = tmp_path / "elsewhere"
    two.parent.rename(moved)
    _parse(dags, cache, complete=False)  # a worker parses for one DAG: the others are not its business
    assert str(two) in _entries(cache)
    _parse(dags, cache)
    assert set(_entries(cache)) == {str(dags / "one" / "valohai.yaml")}


def test_a_large_plan_stays_in_its_own_pickle(
    dags: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker reads the index but should unpickle only the project it runs."""
    monkeypatch.setattr(folder_index_module, "INLINE_LIMIT", 0)
    cache = tmp_path / "cache"
    first = _parse(dags, cache)
    assert all(pickled is None for _, _, _, pickled, _ in _entries(cache).values())
    assert _parse(dags, cache) == first
    for pickled in cache.glob("plan-*.pickle"):  # served through the content hash the entry gives
        plan = pickle.loads(pickled.read_bytes())
        pickled.write_bytes(pickle.dumps(dataclasses.replace(plan, root="/from-plan-pickle")))
    assert {p.root for p in _parse(dags, cache).values()} == {"/from-plan-pickle"}  # type: ignore[attr-defined]


def test_a_broken_project_is_not_indexed_and_its_errors_stay(dags: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _write_old(dags / "two" / "valohai.yaml", GOOD.replace("step: train}", "step: nope}"))
    for _ in range(2):
        plans = _parse(dags, cache)
        assert isinstance(plans["two"], ValohaiSpecError) and "nope" in str(plans["two"])
    assert set(_entries(cache)) == {str(dags / "one" / "valohai.yaml")}


def test_an_unreadable_index_is_ignored(dags: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _parse(dags, cache)
    (written,) = cache.glob("index-*.pickle")
    written.write_bytes(b"not a pickle")
    assert _parse(dags, cache) == first
    assert len(_entries(cache)) == 2  # and written anew


@pytest.mark.parametrize("replacement", ["fifo", "dev-zero", "fifo-sidecar"])
def test_an_indexed_project_replaced_by_an_unreadable_entry_is_not_served_from_the_caches(
    tmp_path: Path, replacement: str
) -> None:
    """A plan in the index, the plan pickles and this process's cache: none of them stands in for a
    valohai.yaml (or sidecar) that became a FIFO or a link to /dev/zero, even one with an old mtime."""
    dags, cache = tmp_path / "dags", tmp_path / "cache"
    (dags / "proj").mkdir(parents=True)
    valohai_yaml = dags / "proj" / "valohai.yaml"
    _write_old(valohai_yaml, GOOD)
    assert not isinstance(_parse(dags, cache)["proj"], ValohaiSpecError)
    index = folder_index(cache, dags)
    assert index is not None
    if replacement == "fifo-sidecar":
        entry = dags / "proj" / SIDECAR_NAME
    else:
        entry = valohai_yaml
        entry.unlink()
    if replacement == "dev-zero":
        entry.symlink_to("/dev/zero")
    else:
        os.mkfifo(entry)
        os.utime(entry, ns=(HOUR_AGO_NS, HOUR_AGO_NS))
    for fresh_process in (False, True):  # the good plan still in this process, then a fresh one
        if fresh_process:
            clear_cache()
        with pytest.raises(ValohaiSpecError, match="not a regular file"):
            compile_project(valohai_yaml, cache_dir=cache, index=index)


def test_an_attachment_is_kept_beside_the_plan_until_the_project_changes(dags: Path, tmp_path: Path) -> None:
    """What is derived from the plan alone (the task docs) is read back from the index entry; an
    edit of the project drops it with the old plan, and a project without an entry keeps nothing."""
    cache = tmp_path / "cache"
    one = str(dags / "one" / "valohai.yaml")
    _parse(dags, cache)
    index = folder_index(cache, dags)
    assert index is not None
    assert index.attachment(one, "k") is None
    assert index.attach(one, "k", b"derived")
    assert not index.attach(str(dags / "absent" / "valohai.yaml"), "k", b"derived")
    index.save(complete=False)
    reread = folder_index(cache, dags)
    assert reread is not None
    assert reread.attachment(one, "k") == b"derived"
    assert reread.attachment(one, "other key") is None
    _write_old(dags / "one" / "valohai.yaml", GOOD.replace("name: a,", "name: b,"), HOUR_AGO_NS + 10**9)
    _parse(dags, cache)
    after_edit = folder_index(cache, dags)
    assert after_edit is not None
    assert after_edit.attachment(one, "k") is None
