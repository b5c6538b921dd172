from __future__ import annotations

import re
import time

import pytest

from valohai_airflow.runtime.globs import compile_glob, match_outputs, translate
from valohai_airflow.runtime.ids import ExecutionKey, execution_id, job_id, safe_segment

PATHS = [
    "model.pkl",
    "model.h5",
    "modelling.txt",
    "results/model.pkl",
    "results/deep/x.pkl",
    "results/summary.json",
    ".hidden",
    "a/b",
    "a/x/y/b",
    "checkpoints/epoch1.pkl",
]


def test_execution_ids_are_stable_and_distinct() -> None:
    a = execution_id("dag", "manual__2026-01-01T00:00:00+00:00", "train", -1, 1)
    assert a == execution_id("dag", "manual__2026-01-01T00:00:00+00:00", "train", -1, 1)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", a)
    others = {
        execution_id("dag", "manual__2026-01-01T00:00:00+00:00", "train", -1, 2),
        execution_id("dag", "manual__2026-01-01T00:00:00+00:00", "train", 0, 1),
        execution_id("dag", "manual__2026-01-01T00:00:00+00:00", "eval", -1, 1),
        execution_id("dag2", "manual__2026-01-01T00:00:00+00:00", "train", -1, 1),
    }
    assert a not in others and len(others) == 4
    assert job_id(a) == "exec-" + a


def test_execution_key_prefix_is_safe_and_unique() -> None:
    key = ExecutionKey("my dag", "manual__2026-01-01T00:00:00+00:00", "train", 3, 2)
    parts = key.prefix.split("/")
    assert len(parts) == 5 and parts[-2:] == ["3", "2"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in parts)
    assert safe_segment("a:b") != safe_segment("a_b")
    assert safe_segment("plain-name_1.0") == "plain-name_1.0"
    assert safe_segment("..").startswith("_")
    assert key.job_id == "exec-" + key.execution_id


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("model*", ["model.pkl", "model.h5", "modelling.txt"]),
        ("*.pkl", ["model.pkl"]),
        ("results/*.pkl", ["results/model.pkl"]),
        ("results/model.pkl", ["results/model.pkl"]),
        ("**/*.pkl", ["model.pkl", "results/model.pkl", "results/deep/x.pkl", "checkpoints/epoch1.pkl"]),
        ("**.pkl", ["model.pkl", "results/model.pkl", "results/deep/x.pkl", "checkpoints/epoch1.pkl"]),
        ("results/**", ["results/model.pkl", "results/deep/x.pkl", "results/summary.json"]),
        ("results/", ["results/model.pkl", "results/deep/x.pkl", "results/summary.json"]),
        ("a/**/b", ["a/b", "a/x/y/b"]),
        ("*", ["model.pkl", "model.h5", "modelling.txt", ".hidden"]),
        ("model.?5", ["model.h5"]),
        ("[mr]*.pkl", ["model.pkl"]),
        ("[!m]*", [".hidden"]),
        ("./model.h5", ["model.h5"]),
        ("nothing*", []),
    ],
)
def test_glob_semantics(pattern: str, expected: list[str]) -> None:
    assert match_outputs(pattern, PATHS) == expected


def test_basename_mode_and_literal_characters() -> None:
    assert match_outputs("*.pkl", PATHS, match_basename=True) == [
        "model.pkl",
        "results/model.pkl",
        "results/deep/x.pkl",
        "checkpoints/epoch1.pkl",
    ]
    assert compile_glob("x.pkl", match_basename=True).matches("results/deep/x.pkl")
    assert not compile_glob("results/x.pkl", match_basename=True).matches("other/results/x.pkl")
    assert match_outputs("a+b(1).txt", ["a+b(1).txt", "aab(1).txt"]) == ["a+b(1).txt"]
    assert match_outputs("[unclosed", ["[unclosed", "u"]) == ["[unclosed"]
    assert "/" not in translate("[a/b]").replace("[^/", "")


def test_only_a_pattern_of_stars_matches_everything_and_filters_without_matching() -> None:
    assert compile_glob("**").matches_everything and compile_glob("***").matches_everything
    assert not any(compile_glob(p).matches_everything for p in ("*", "**/*", "a/**", "./**/x"))
    assert (
        compile_glob("**").filter(iter(PATHS)) == PATHS == [p for p in PATHS if compile_glob("**").matches(p)]
    )


def test_one_edge_over_100k_files_is_fast() -> None:
    paths = [f"shard{i % 100}/part-{i:06d}.{'csv' if i % 3 else 'json'}" for i in range(100_000)]
    started = time.perf_counter()
    matched = match_outputs("shard7/*.json", paths)
    deep = match_outputs("**/*.csv", paths)
    elapsed = time.perf_counter() - started
    assert len(matched) == len([i for i in range(100_000) if i % 100 == 7 and i % 3 == 0])
    assert len(deep) == len([i for i in range(100_000) if i % 3])
    assert elapsed < 0.2, f"two edges over 100k paths took {elapsed:.3f}s"
