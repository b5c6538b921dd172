"""A Git repository served to Airflow as a Git DAG bundle (apache-airflow-providers-git): a local
bare repository, named by the host of a Git connection (the provider clones a local path as it
clones a URL), and a work clone the tests commit to and push from, as a team pushes to its remote."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

BUNDLE_NAME = "valohai-git"
CONN_ID = "valohai_git"
BRANCH = "main"


@dataclass(frozen=True)
class GitOrigin:
    bare: Path
    work: Path

    @classmethod
    def create(cls, root: Path) -> GitOrigin:
        """The bare repository and its clone, whose first commit holds only the loader file."""
        origin = cls(root / "origin.git", root / "work")
        root.mkdir(parents=True)
        _git(root, "init", "-q", "--bare", "-b", BRANCH, str(origin.bare))
        _git(root, "clone", "-q", str(origin.bare), str(origin.work))
        _git(origin.work, "checkout", "-q", "-b", BRANCH)
        shutil.copy(REPO_ROOT / "dags" / "valohai_dags.py", origin.work / "valohai_dags.py")
        origin.commit({}, "the loader file")
        return origin

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write `files` (path below the repository: text), commit and push them; the commit's sha."""
        for relative, text in files.items():
            (self.work / relative).parent.mkdir(parents=True, exist_ok=True)
            (self.work / relative).write_text(text)
        _git(self.work, "add", "-A")
        _git(
            self.work,
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.invalid",
            "commit",
            "-q",
            "-m",
            message,
        )
        _git(self.work, "push", "-q", "origin", BRANCH)
        return _git(self.work, "rev-parse", "HEAD").strip()

    def environment(self) -> dict[str, str]:
        """The Airflow settings of the bundle: its connection, the bundle list, where checkouts go."""
        return {
            f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps({"conn_type": "git", "host": str(self.bare)}),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": self.bundle_config(),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.bare.parent / "dag_bundles"),
        }

    def bundle_config(self) -> str:
        """`[dag_processor] dag_bundle_config_list`: the dags folder and this repository side by side."""
        return json.dumps(
            [
                {
                    "name": "dags-folder",
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {},
                },
                {
                    "name": BUNDLE_NAME,
                    "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
                    "kwargs": {"git_conn_id": CONN_ID, "tracking_ref": BRANCH, "refresh_interval": 2},
                },
            ]
        )


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout
