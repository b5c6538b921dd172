from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from valohai_airflow.runtime.config_files import (
    InputFileEntry,
    execution_json,
    inputs_json,
    write_config_files,
)
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.workdir import create_workdir, valohai_environment

KEY = ExecutionKey("dag", "manual__2026-01-01T00:00:00+00:00", "train", -1, 1)


def make_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "valohai.yaml").write_text("- step: {name: x, image: python, command: echo}\n")
    (root / "src/train.py").write_text("print('hi')\n")
    (root / ".git").mkdir()
    (root / ".git/HEAD").write_text("ref")
    (root / "__pycache__").mkdir()
    (root / "link-out").symlink_to("/etc/hostname")
    return root


def test_workdir_layout_is_fresh_per_try(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    work = create_workdir(tmp_path / "work", KEY, project)
    assert work.root == tmp_path / "work" / KEY.prefix
    assert (work.repository / "src/train.py").read_text() == "print('hi')\n"
    assert not (work.repository / ".git").exists() and not (work.repository / "__pycache__").exists()
    assert (work.repository / "link-out").is_symlink()  # copied as a link, target not read
    for sub in (work.inputs, work.outputs, work.config):
        assert sub.is_dir() and not any(sub.iterdir())
    (work.outputs / "stale.txt").write_text("x")
    (work.repository / "src/train.py").write_text("changed")
    again = create_workdir(tmp_path / "work", KEY, project)
    assert not (again.outputs / "stale.txt").exists()
    assert (project / "src/train.py").read_text() == "print('hi')\n"
    retry = create_workdir(tmp_path / "work", ExecutionKey("dag", KEY.run_id, "train", -1, 2), project)
    assert retry.root != work.root


def test_environment() -> None:
    env = valohai_environment(KEY, pipeline_id="p1")
    assert env["VH_OUTPUTS_DIR"] == "/valohai/outputs" and env["VH_REPOSITORY_DIR"] == "/valohai/repository"
    assert env["VH_JOB_ID"] == "exec-" + env["VH_EXECUTION_ID"] == KEY.job_id
    assert env["VH_PIPELINE_ID"] == "p1" and "VH_PROJECT_ID" not in env


def test_inputs_json_shape() -> None:
    data = inputs_json(
        {"images": [InputFileEntry("sub/a.png", "s3://b/sub/a.png", 3, "ab" * 32, ({"k": "v"},))]}
    )
    assert data == {
        "images": {
            "files": [
                {
                    "name": "sub/a.png",
                    "path": "/valohai/inputs/images/sub/a.png",
                    "uri": "s3://b/sub/a.png",
                    "size": 3,
                    "checksums": {"sha256": "ab" * 32},
                    "metadata": [{"k": "v"}],
                }
            ]
        }
    }


def test_valohai_utils_reads_the_config_files(tmp_path: Path) -> None:
    """Real valohai-utils in a subprocess, with the work dir standing in for /valohai."""
    work = create_workdir(tmp_path / "work", KEY, None)
    (work.inputs / "data").mkdir()
    (work.inputs / "data/d.csv").write_text("1,2\n")
    root = str(work.root)
    write_config_files(
        work.config,
        parameters={"epochs": 5, "lr": 0.01, "verbose": False, "layers": [4, 5]},
        inputs={"data": [InputFileEntry("d.csv", "https://example.com/d.csv", 4, "00" * 32)]},
        execution=execution_json(execution_id=KEY.execution_id, step="train", image="python:3.12", counter=7),
        container_root=root,
    )
    assert yaml.safe_load((work.config / "parameters.yaml").read_text())["epochs"] == 5
    code = (
        "import json, valohai\n"
        "print(json.dumps({'epochs': valohai.parameters('epochs').value,"
        " 'lr': valohai.parameters('lr').value, 'verbose': valohai.parameters('verbose').value,"
        " 'layers': valohai.parameters('layers').value,"
        " 'paths': list(valohai.inputs('data').paths()),"
        " 'exec': valohai.execution().config.id, 'counter': valohai.execution().config.counter}))\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VH_")},
        **valohai_environment(KEY, container_root=root),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, "--epochs=6"], capture_output=True, text=True, env=env, check=True
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {
        "epochs": 6,  # argv still wins, as on Valohai
        "lr": 0.01,
        "verbose": False,
        "layers": [4, 5],
        "paths": [f"{root}/inputs/data/d.csv"],
        "exec": KEY.execution_id,
        "counter": 7,
    }
