"""`valohai-airflow run | outputs | logs | stop` and the Python client against the real Airflow of
tests/e2e/conftest.py (REST API v2, a JWT from SimpleAuthManager's admin user), with the example
project in its dags folder; and Valohai's parallel-pipelines example re-done with the client."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import EXAMPLE_DAG, AirflowServer, free_port
from tests.support.containers import containers_created
from valohai_airflow import cli
from valohai_airflow.client import AirflowClient, ClientError
from valohai_airflow.runtime.ids import ExecutionKey

STEP_DAG = "example__step__preprocess"


@pytest.fixture
def airflow_env(airflow_server: AirflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The client's settings in the environment (as a user would set them), no config file."""
    env = {
        "AIRFLOW_URL": airflow_server.base_url,
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": airflow_server.password,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIRFLOW_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(airflow_server.home / "no-config"))
    yield env


def _started(out: str, server: AirflowServer) -> tuple[str, str]:
    match = re.search(r"^started (\S+)/(\S+)$", out, re.MULTILINE)
    assert match, out
    server.run_ids.append(match.group(2))  # the fixture checks its containers are gone
    return match.group(1), match.group(2)


def test_run_a_step_watch_download_then_outputs_and_logs(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    airflow_server.wait_for_dag(STEP_DAG)
    argv = ["run", str(example_project), "preprocess", "-p", "seed=3", "--title", "from the terminal"]
    status = cli.main([*argv, "--watch", "--download", str(tmp_path / "out")])
    out = capsys.readouterr().out
    dag_id, run_id = _started(out, airflow_server)
    assert status == 0, out + airflow_server.failures(dag_id, run_id)
    assert dag_id == STEP_DAG
    assert "  preprocess: success" in out, out  # ("running" only if a poll fell while it ran)
    assert re.search(r"^  preprocess \| .*", out, re.MULTILINE), (
        out
    )  # log lines, also of a node that ended between polls
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.npz", "train.npz"]
    run = airflow_server.get(f"/dags/{dag_id}/dagRuns/{run_id}")
    assert run["note"] == "from the terminal"
    assert run["conf"] == {"preprocess.parameter.seed": 3}

    assert (
        cli.main(
            ["outputs", f"{dag_id}/{run_id}", "--node", "preprocess", "--download", str(tmp_path / "again")]
        )
        == 0
    )
    listed = capsys.readouterr().out
    assert "train.npz" in listed and "test.npz" in listed, listed
    assert (tmp_path / "again" / "train.npz").read_bytes() == (tmp_path / "out" / "train.npz").read_bytes()

    assert cli.main(["logs", f"{dag_id}/{run_id}", "--node", "preprocess"]) == 0
    assert "preprocess" in capsys.readouterr().out

    assert cli.main(["outputs", f"{dag_id}/{run_id}", "--node", "preprocss"]) == 2
    assert "no finished node 'preprocss'" in capsys.readouterr().err


def test_a_failed_run_is_exit_status_one(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(["run", str(example_project), "preprocess", "--input", "raw=data/no-such-file.csv"])
    out = capsys.readouterr().out
    dag_id, run_id = _started(out, airflow_server)
    assert status == 1, out
    assert f"{dag_id}/{run_id}: failed" in out


def test_stop_marks_a_run_failed(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", str(example_project), "preprocess", "--detach"]) == 0
    dag_id, run_id = _started(capsys.readouterr().out, airflow_server)
    assert cli.main(["stop", f"{dag_id}/{run_id}"]) == 0
    assert f"stopped {dag_id}/{run_id}" in capsys.readouterr().out
    assert airflow_server.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"] == "failed"
    airflow_server.wait_until_idle()


def test_unreachable_airflow_and_a_refused_token_are_one_line_and_start_nothing(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = airflow_server.get(f"/dags/{STEP_DAG}/dagRuns")["total_entries"]
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_URL", nowhere)
    assert cli.main(["run", str(example_project), "preprocess"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Airflow at {nowhere} is unreachable" in err and "AIRFLOW_URL" in err, (
        err
    )

    monkeypatch.setenv("AIRFLOW_URL", airflow_server.base_url)
    monkeypatch.setenv("AIRFLOW_TOKEN", "not-a-token")
    assert cli.main(["run", str(example_project), "preprocess"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"Airflow at {airflow_server.base_url} refused the token" in err, err
    assert "AIRFLOW_TOKEN" in err
    assert airflow_server.get(f"/dags/{STEP_DAG}/dagRuns")["total_entries"] == before


def test_the_parallel_pipelines_example(
    airflow_server: AirflowServer, example_project: Path, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """Two runs of the example pipeline with different test fractions, side by side, through the
    Python client: each run's best model and evaluations downloaded, the runs listed with notes."""
    script = REPO_ROOT / "examples" / "parallel_pipelines.py"
    command = [
        sys.executable,
        str(script),
        "--fractions",
        "0.2,0.4",
        "--epochs",
        "5",
        "--download",
        str(tmp_path),
    ]
    done = subprocess.run(
        command, env={**os.environ, **airflow_env}, capture_output=True, text=True, check=False
    )
    triggered = re.findall(rf"^triggered {EXAMPLE_DAG}/(\S+) with", done.stdout, re.MULTILINE)
    airflow_server.run_ids.extend(triggered)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(triggered) == 2, done.stdout
    for run_id in triggered:
        files = {
            p.relative_to(tmp_path / run_id).as_posix() for p in (tmp_path / run_id).rglob("*") if p.is_file()
        }
        assert "pick-best/best-model.npz" in files, files
        assert {f.split("/")[0] for f in files} == {
            "pick-best",
            "evaluate-fast",
            "evaluate-medium",
            "evaluate-slow",
        }
        assert re.search(
            rf"^{run_id} \(test_fraction=0\.[24]\): model-lr[0-9.]+\.npz accuracy [0-9.]+$",
            done.stdout,
            re.MULTILINE,
        ), done.stdout
    assert (tmp_path / "summary.json").is_file()


def test_the_client_finds_an_execution_by_its_valohai_id_and_downloads_it(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`VH_EXECUTION_ID` is a hash (runtime/ids.py), so the client looks it up among the DAG's runs."""
    airflow_server.wait_for_dag(STEP_DAG)
    with AirflowClient() as client:
        run_id = client.trigger(STEP_DAG, {"preprocess.parameter.seed": 5}, title="by execution id")
        airflow_server.run_ids.append(run_id)
        assert client.wait(STEP_DAG, run_id) == "success", airflow_server.failures(STEP_DAG, run_id)
        assert run_id in {run["dag_run_id"] for run in client.runs(STEP_DAG)}
        (manifest,) = client.manifest(STEP_DAG, run_id, "preprocess")
        assert manifest.execution_id == ExecutionKey(STEP_DAG, run_id, "preprocess").execution_id
        found = client.find_execution(STEP_DAG, manifest.execution_id)
        assert found == manifest
        files = client.download([found], tmp_path)
        assert sorted(p.name for p in files) == ["test.npz", "train.npz"]
        with pytest.raises(ClientError, match="no execution 0000"):
            client.find_execution(STEP_DAG, "0000", runs=5)
    assert (
        cli.main(
            ["outputs", STEP_DAG, "--execution", manifest.execution_id, "--download", str(tmp_path / "cli")]
        )
        == 0
    )
    assert f"preprocess (execution {manifest.execution_id})" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["test.npz", "train.npz"]

    # the same node reused from that run by `run --reuse-from`: its manifest again, no container
    since = time.time()
    argv = ["run", str(example_project), "preprocess", "--reuse-from", f"{STEP_DAG}/{run_id}"]
    assert cli.main([*argv, "--reuse", "preprocess"]) == 0
    _, reusing = _started(capsys.readouterr().out, airflow_server)
    reused = airflow_server.xcom(STEP_DAG, reusing, "preprocess")
    assert reused["reused_from"]["run_id"] == run_id and reused["execution_id"] == manifest.execution_id
    assert containers_created(STEP_DAG, reusing, since - 60) == []


def test_run_adhoc_runs_the_working_tree_not_the_dags_folder(
    airflow_server: AirflowServer,
    example_project: Path,
    airflow_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A modified copy of the project (same valohai.yaml, changed code) runs through `--adhoc`:
    the snapshot goes to the workers' store, the node runs it and logs its identifier."""
    airflow_server.wait_for_dag(STEP_DAG)
    tree = tmp_path / "example"  # the folder's name is the project's
    shutil.copytree(example_project, tree, ignore=shutil.ignore_patterns("__pycache__"))
    code = (tree / "preprocess.py").read_text()
    (tree / "preprocess.py").write_text(code + '\nprint("this line is only in the working tree")\n')
    argv = ["run", str(tree), "preprocess", "--adhoc", "--store", str(airflow_server.store)]
    status = cli.main(argv)
    out = capsys.readouterr().out
    dag_id, run_id = _started(out, airflow_server)
    assert status == 0, out + airflow_server.failures(dag_id, run_id)
    sent = re.search(
        r"^ad hoc code (~[0-9a-f]{64}) \(\d+ files, [^)]*\): uploaded to (\S+)$", out, re.MULTILINE
    )
    assert sent, out
    assert (
        airflow_server.get(f"/dags/{dag_id}/dagRuns/{run_id}")["conf"]["valohai.adhoc"]["commit"] == sent[1]
    )
    assert cli.main(["logs", f"{dag_id}/{run_id}", "--node", "preprocess"]) == 0
    logs = capsys.readouterr().out
    assert "this line is only in the working tree" in logs, logs[-3000:]
    assert f"/valohai/repository: the ad hoc code {sent[1]} ({sent[2]})" in logs
    assert "only in the working tree" not in (example_project / "preprocess.py").read_text()
