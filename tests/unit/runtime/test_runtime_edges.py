"""File edges at run time (runtime.edge_resolution): which upstream files an edge brings and the names they get."""

from __future__ import annotations

import time

import pytest

from tests.unit.plan.support import compile_text
from valohai_airflow.plan.model import PipelinePlan
from valohai_airflow.runtime.edge_resolution import EdgeFile, EdgeResolutionError, resolve_edges
from valohai_airflow.runtime.manifest import Manifest, ManifestFile

YAML = """\
- step:
    name: make
    image: busybox
    command: make
    inputs:
      - {name: model, optional: true}
      - {name: model-extra, optional: true}
      - {name: other, optional: true}
- step:
    name: use
    image: busybox
    command: use
    inputs:
      - {name: x, optional: true}
- pipeline:
    name: p
    nodes:
      - {name: a, type: execution, step: make}
      - {name: b, type: execution, step: make}
      - {name: use, type: execution, step: use}
    edges:
%s
"""


def pipeline(*edges: str) -> PipelinePlan:
    (plan,) = compile_text(YAML % "\n".join(f"      - [{e}]" for e in edges)).pipelines
    return plan


def manifest(
    node: str, outputs: list[ManifestFile], inputs: dict[str, list[ManifestFile]] | None = None
) -> Manifest:
    return Manifest(
        execution_id=node, node=node, step="make", image="busybox", outputs=outputs, inputs=inputs or {}
    )


def out(path: str, node: str = "a", **extra: object) -> ManifestFile:
    return ManifestFile(path=path, uri=f"file:///s/{node}/{path}", size=len(path), sha256="f" * 64, **extra)  # type: ignore[arg-type]


def test_an_output_glob_selects_files_and_keeps_what_the_manifest_says() -> None:
    plan = pipeline("a.output.results/*.csv, use.input.x")
    files = [out("results/1.csv", properties={"tag": "t"}), out("results/deep/2.csv"), out("3.csv")]
    values = resolve_edges(plan, plan.node("use"), {"a": [manifest("a", files)]})
    assert values.inputs["x"] == [
        EdgeFile("1.csv", "file:///s/a/results/1.csv", 13, "f" * 64, "a", {"tag": "t"})
    ]
    assert values.log == ["a.output.results/*.csv → use.input.x: 1 file(s)"]


def test_same_names_from_two_edges_the_first_keeps_it() -> None:
    plan = pipeline("a.output.**, use.input.x", "b.output.**, use.input.x")
    upstream = {
        "a": [manifest("a", [out("m/model.pkl"), out("log.txt")])],
        "b": [manifest("b", [out("model.pkl", "b"), out("n/model.pkl", "b")])],
    }
    values = resolve_edges(plan, plan.node("use"), upstream)
    assert [(f.name, f.uri, f.source_node) for f in values.inputs["x"]] == [
        ("model.pkl", "file:///s/a/m/model.pkl", "a"),
        ("log.txt", "file:///s/a/log.txt", "a"),
        ("b-model.pkl", "file:///s/b/model.pkl", "b"),
        ("b-model-2.pkl", "file:///s/b/n/model.pkl", "b"),  # b-model.pkl is taken by its sibling
    ]
    assert "input 'x': 'model.pkl' from b arrives as 'b-model.pkl'" in values.log
    assert "input 'x': 'model.pkl' from b arrives as 'b-model-2.pkl'" in values.log


def test_one_source_bringing_a_name_many_times_loses_no_file() -> None:
    plan = pipeline("a.output.**, use.input.x")
    paths = [
        "model.pkl",
        "1/model.pkl",
        "2/model.pkl",
        "3/model.pkl",
        "x/a-model-2.pkl",
        "README",
        "4/README",
    ]
    values = resolve_edges(plan, plan.node("use"), {"a": [manifest("a", [out(p) for p in paths])]})
    names = [f.name for f in values.inputs["x"]]
    assert names == [
        "model.pkl",
        "a-model.pkl",
        "a-model-2.pkl",
        "a-model-3.pkl",
        "a-a-model-2.pkl",
        "README",
        "a-README",
    ]
    assert len(set(names)) == len(paths)


def test_a_basename_in_every_one_of_many_folders_gets_numbered_names_and_a_short_log() -> None:
    """100 folders of the same 30 names: every file arrives under its own name, the renames are
    logged one by one up to LOGGED_RENAMES per edge and then counted in one line."""
    from valohai_airflow.runtime.edge_resolution import LOGGED_RENAMES

    plan = pipeline("a.output.**, use.input.x")
    paths = [f"shard-{s:03d}/part-{p:02d}.csv" for s in range(100) for p in range(30)]
    values = resolve_edges(plan, plan.node("use"), {"a": [manifest("a", [out(p) for p in paths])]})
    names = [f.name for f in values.inputs["x"]]
    assert len(set(names)) == len(paths) == 3000
    assert names[:30] == [f"part-{p:02d}.csv" for p in range(30)]
    assert names[30] == "a-part-00.csv" and names[60] == "a-part-00-2.csv" and names[-1] == "a-part-29-99.csv"
    renames = [line for line in values.log if " arrives as " in line]
    assert len(renames) == LOGGED_RENAMES
    summary = f"input 'x': {2970 - LOGGED_RENAMES:,} more files from a renamed the same way"
    assert [line for line in values.log if line.startswith(summary)]


def test_an_input_glob_takes_every_file_of_the_inputs_it_names() -> None:
    plan = pipeline("a.input.model*, use.input.x")
    inputs = {
        "other": [out("o.bin")],
        "model-extra": [out("e.bin")],
        "model": [out("m.bin")],
    }
    values = resolve_edges(plan, plan.node("use"), {"a": [manifest("a", [], inputs)]})
    assert [f.name for f in values.inputs["x"]] == ["m.bin", "e.bin"]  # input names in sorted order


def test_an_edge_that_matches_nothing_gives_an_empty_input() -> None:
    plan = pipeline("a.output.*.csv, use.input.x")
    values = resolve_edges(plan, plan.node("use"), {"a": [manifest("a", [out("sub/1.csv")])]})
    assert values.inputs == {}
    assert values.log == ["a.output.*.csv → use.input.x: 0 file(s)"]


def test_a_file_without_a_stored_copy_and_a_missing_upstream_are_errors() -> None:
    plan = pipeline("a.output.*, use.input.x")
    no_copy = manifest("a", [ManifestFile(path="x.bin", size=1)])
    with pytest.raises(EdgeResolutionError, match=r"upstream file 'x\.bin' has no stored copy"):
        resolve_edges(plan, plan.node("use"), {"a": [no_copy]})
    with pytest.raises(EdgeResolutionError, match="no manifest from 'a' in this run"):
        resolve_edges(plan, plan.node("use"), {})


def test_an_every_file_edge_over_100k_outputs_is_fast() -> None:
    plan = pipeline("a.output.**, use.input.x")
    paths = [f"shard-{i // 1000:03d}/part-{i:05d}.csv" for i in range(100_000)]
    upstream = {"a": [manifest("a", [ManifestFile(path=p, uri=f"file:///s/{p}", size=1) for p in paths])]}
    started = time.perf_counter()
    values = resolve_edges(plan, plan.node("use"), upstream)
    elapsed = time.perf_counter() - started
    assert len(values.inputs["x"]) == 100_000 and values.inputs["x"][-1].name == "part-99999.csv"
    assert elapsed < 1.0, (
        f"an every-file edge over 100k outputs took {elapsed:.3f}s"
    )  # generous: shared CI cores


def test_edge_files_read_like_a_list_of_edge_files() -> None:
    plan = pipeline("a.output.*, use.input.x", "b.output.*, use.input.x")
    upstream = {"a": [manifest("a", [out("1.bin"), out("2.bin")])], "b": [manifest("b", [out("3.bin", "b")])]}
    files = resolve_edges(plan, plan.node("use"), upstream).inputs["x"]
    as_list = list(files)
    assert len(files) == 3 and files == as_list and as_list == files and files != as_list[:2]
    assert files[0] == as_list[0] and files[-1].source_node == "b" and files[1:] == as_list[1:]
    assert [f.name for f in reversed(files)] == ["3.bin", "2.bin", "1.bin"]
    with pytest.raises(IndexError):
        files[3]
    assert files[0].properties is not files[0].properties  # each EdgeFile gets its own copy, as before
    assert repr(files).startswith("EdgeFiles([EdgeFile(name='1.bin'")
