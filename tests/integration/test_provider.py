"""The installed package as Airflow's own CLI sees it: a provider with a `[valohai]` config section."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping

from tests.conftest import REPO_ROOT

AIRFLOW = str(REPO_ROOT / ".venv" / "bin" / "airflow")


def _airflow(*runs: tuple[tuple[str, ...], Mapping[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run several `airflow` commands at once (each takes seconds to start) with the test environment
    (the throwaway AIRFLOW_HOME the root conftest set) plus `extra` variables. Not in unit-test mode:
    a user's airflow reads airflow.cfg, and unit-test mode logs a line to stdout."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__UNIT_TEST_MODE"}
    processes = [
        subprocess.Popen(
            [AIRFLOW, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, **extra},
        )
        for args, extra in runs
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_airflow_cli_sees_the_provider_and_its_config() -> None:
    providers, default, from_env = _airflow(
        (("providers", "list", "--output", "json"), {}),
        (("config", "get-value", "valohai", "strict_loading"), {}),
        (("config", "get-value", "valohai", "strict_loading"), {"AIRFLOW__VALOHAI__STRICT_LOADING": "True"}),
    )
    assert providers.returncode == 0, providers.stderr
    listed = {p["package_name"]: p for p in json.loads(providers.stdout)}
    assert listed["valohai-airflow"]["version"] == "0.1.0"
    assert listed["valohai-airflow"]["description"].startswith("Runs the pipelines of a valohai.yaml")
    assert (default.returncode, default.stdout.strip()) == (0, "False"), default.stderr
    assert (from_env.returncode, from_env.stdout.strip()) == (0, "True"), from_env.stderr
