"""Airflow ids: readable, valid for Airflow, stable, and distinct for distinct names."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from valohai_airflow.plan.naming import MAX_ID, dag_id_for, project_dag_prefix, task_id_for

# Airflow's KEY_REGEX is ^[\w.-]+$ (unicode \w); we promise the ASCII subset and no dots at all.
ASCII_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def test_safe_names_keep_their_spelling() -> None:
    for name in ("train", "Train-Model_2", "evaluate-slow", "_private", "a" * MAX_ID):
        assert task_id_for(name) == name


def test_other_names_become_readable_with_a_hash_of_the_original() -> None:
    assert re.fullmatch(r"train_model_[0-9a-f]{6}", task_id_for("train model"))
    assert re.fullmatch(r"Batch_feature_extraction_[0-9a-f]{6}", task_id_for("Batch feature extraction"))
    # accents are folded, not dropped; letters without an ASCII form fall back to a generic word
    assert re.fullmatch(r"trane_[0-9a-f]{6}", task_id_for("träne"))
    assert re.fullmatch(r"node_[0-9a-f]{6}", task_id_for("日本語"))
    assert re.fullmatch(r"a_b_[0-9a-f]{6}", task_id_for("a.b"))


def test_names_differing_only_in_unsafe_characters_get_different_ids() -> None:
    names = ["a b", "a/b", "a:b", "a_b", "a  b", "a b "]
    ids = [task_id_for(n) for n in names]
    assert len(set(ids)) == len(names)


def test_long_names_are_cut_to_airflows_limit_and_stay_distinct() -> None:
    long_a = "x" * 300 + "a"
    long_b = "x" * 300 + "b"
    assert len(task_id_for(long_a)) == MAX_ID
    assert task_id_for(long_a) != task_id_for(long_b)


def test_dag_ids_join_project_and_pipeline() -> None:
    assert dag_id_for("example", "three-trainings") == "example__three-trainings"
    assert dag_id_for("example", "three trainings").startswith("example__three_trainings_")
    assert dag_id_for("example", "x").startswith(project_dag_prefix("example"))
    assert len(dag_id_for("p" * 400, "q" * 400)) <= MAX_ID


@given(st.text(min_size=1, max_size=400))
def test_every_name_maps_to_a_valid_stable_id(name: str) -> None:
    task_id = task_id_for(name)
    assert ASCII_ID.match(task_id)
    assert len(task_id) <= MAX_ID
    assert task_id == task_id_for(name)  # deterministic: no state, no salt
    dag_id = dag_id_for(name, name)
    assert ASCII_ID.match(dag_id)
    assert len(dag_id) <= MAX_ID


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_distinct_names_get_distinct_ids(a: str, b: str) -> None:
    if a != b:
        assert task_id_for(a) != task_id_for(b)
