"""`valohai-airflow run --local`: the example project's step and pipeline run without any Airflow
service (Airflow's dag.test() in a fresh interpreter, SQLite, real containers), outputs downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from valohai_airflow import cli

EXAMPLE = REPO_ROOT / "dags" / "example"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The local store and Airflow's log go below XDG_CACHE_HOME: a folder of this test's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AIRFLOW__VALOHAI__STORE_URL", raising=False)
    return tmp_path / "cache"


def test_a_step_runs_locally(
    docker_engine: None, cache_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        ["run", str(EXAMPLE), "preprocess", "-p", "seed=3", "--local", "--download", str(tmp_path / "out")]
    )
    out = capsys.readouterr().out
    log = cache_home / "valohai-airflow" / "local-logs" / "example__step__preprocess.log"
    assert status == 0, out + (log.read_text()[-3000:] if log.exists() else "no log")
    assert "  preprocess: success" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.npz", "train.npz"]
    store = cache_home / "valohai-airflow" / "local-store" / "example__step__preprocess"
    assert sorted(p.name for p in store.rglob("*.npz")) == ["test.npz", "train.npz"]


def test_the_example_pipeline_runs_locally_and_a_failure_is_exit_status_one(
    docker_engine: None, cache_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(EXAMPLE), "--pipeline", "three-trainings", "-p", "train-fast.epochs=5", "--local"]
    status = cli.main([*argv, "--download", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert (tmp_path / "out" / "pick-best" / "best-model.npz").is_file()
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "preprocess", "train-fast", "train-medium", "train-slow",
        "evaluate-fast", "evaluate-medium", "evaluate-slow", "pick-best",
    }  # fmt: skip

    failing = ["run", str(EXAMPLE), "preprocess", "--input", "raw=data/no-such-file.csv", "--local"]
    assert cli.main(failing) == 1
    assert "  preprocess: failed" in capsys.readouterr().out
