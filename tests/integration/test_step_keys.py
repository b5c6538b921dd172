"""Keys of valohai.yaml that act inside the container, run for real (`dag.test()`, real containers):
`mounts` (bind mounts of host folders valohai-airflow.yaml allows, and the refused case),
`stop-condition` (the container is stopped once the condition holds over its metadata),
distributed tasks (VH_DIST_* and distributed.json, read by valohai-utils inside the container) and
`download: on-demand` inputs (fetched before start, described in inputs.json as Valohai does).
"""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PYTHON
from tests.integration.pipelines import run_pipeline, step
from valohai_airflow.loading.project import compile_project

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PREFIX = "keys"


def _pipeline(node: str, step_name: str, kind: str = "execution", extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        - pipeline:
            name: p
            nodes:
              - {{name: {node}, type: {kind}, {step_name}}}
            edges: []
        """
    ) + textwrap.dedent(extra)


def _output(manifest: dict[str, Any], name: str) -> bytes:
    """An output file's bytes, read back from the (local, file://) store the manifest names."""
    entry = next(o for o in manifest["outputs"] if o["path"] == name)
    return Path(entry["uri"].removeprefix("file://")).read_bytes()


def test_an_allowed_host_folder_is_mounted_read_only_and_a_refused_one_is_not(
    dags_folder: Path, tmp_path: Path
) -> None:
    shared, secret = tmp_path / "shared", tmp_path / "secret"
    shared.mkdir()
    secret.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    (secret / "key.txt").write_text("do not read\n")
    (tmp_path / "escape").symlink_to(secret)  # inside no allowed folder once resolved
    command = (
        "cp /data/hello.txt /valohai/outputs/; "
        "if touch /data/new 2>/dev/null; then w=true; else w=false; fi; "
        "if [ -e /secret/key.txt ] || [ -e /escape/key.txt ]; then s=true; else s=false; fi; "
        'echo "{\\"writable\\": $w, \\"secret\\": $s}"'
    )
    yaml = step(
        "read",
        command,
        f"""
        mounts:
          - {{source: {shared}, destination: /data, readonly: true}}
          - {secret}:/secret
          - {tmp_path}/shared/../escape:/escape
        """,
    )
    yaml += _pipeline("read", "step: read")
    sidecar = f"mounts:\n  allow: [{shared}]\n"
    outcome = run_pipeline(dags_folder, f"{PREFIX}-mounts", yaml, sidecar=sidecar)
    assert outcome.state == "success", outcome.states
    manifest = outcome.xcom("read")
    assert manifest["metadata"]["secret"] is False
    assert manifest["metadata"]["writable"] is False  # readonly: true
    assert _output(manifest, "hello.txt") == b"from the host\n"
    assert not (shared / "new").exists()

    warnings = [d for d in compile_project(dags_folder / f"{PREFIX}-mounts" / "valohai.yaml").diagnostics]
    refused = sorted((d.location.line, d.message) for d in warnings if "mount" in d.message)
    assert [line for line, _ in refused] == [7, 8]
    assert "is outside `mounts.allow` of valohai-airflow.yaml" in refused[0][1]
    assert "so the container runs without it" in refused[1][1]


def test_stop_condition_stops_the_container_once_it_holds_and_keeps_the_outputs(dags_folder: Path) -> None:
    command = (
        "echo written > /valohai/outputs/early.txt; "
        'echo \'{"loss": 0.9, "stop": 0}\'; echo \'{"stop": 1}\'; echo \'{"stop": 2}\'; '
        "sleep 120; echo '{\"after\": 1}'; echo never > /valohai/outputs/late.txt"
    )
    yaml = step("train", command, "stop-condition: stop > 1")
    yaml += _pipeline("train", "step: train")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-stop", yaml)
    assert outcome.state == "success", outcome.states
    manifest = outcome.xcom("train")
    assert manifest["status"] == "stopped"
    assert manifest["metadata"]["stop"] == 2
    assert "after" not in manifest["metadata"]
    assert [o["path"] for o in manifest["outputs"]] == ["early.txt"]


def test_a_missing_key_never_makes_the_stop_condition_hold(dags_folder: Path) -> None:
    yaml = step("train", "echo '{\"loss\": 0.5}'; echo done", "stop-condition: accuracy >= 0.99")
    yaml += _pipeline("train", "step: train")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-nostop", yaml)
    assert outcome.state == "success", outcome.states
    assert outcome.xcom("train")["status"] == "completed"


DISTRIBUTED_PROBE = (
    "import json, os, valohai; d = valohai.distributed; "
    "print(json.dumps({'distributed': d.is_distributed_task(), 'rank': d.rank, 'count': d.required_count, "
    "'master': d.master().member_id, 'members': len(d.members()), 'ip': d.master().primary_local_ip, "
    "'env': [os.environ[k] for k in ('VH_DIST_MEMBER_ID', 'VH_DIST_MEMBER_INDEX', 'VH_DIST_MEMBER_COUNT')], "
    "'yaml': os.path.exists('/valohai/config/distributed.yaml')}))"
)


def test_distributed_task_members_find_rank_count_and_master_through_valohai_utils(dags_folder: Path) -> None:
    yaml = textwrap.dedent(
        f"""\
        - step:
            name: worker
            image: {PYTHON}
            command: {json.dumps("python3 -c " + shlex.quote(DISTRIBUTED_PROBE))}
            environment-variables:
              - {{name: VH_DOCKER_NETWORK, default: host}}
        - task:
            name: group
            step: worker
            type: distributed
            execution-count: 3
            parameters: []
        """
    )
    yaml += _pipeline("train", "task: group", kind="task")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-dist", yaml)
    assert outcome.state == "success", outcome.states
    seen = [
        t.xcom_pull(task_ids="train", map_indexes=t.map_index)["metadata"]
        for t in outcome.executions("train")
    ]
    assert [(m["rank"], m["env"]) for m in seen] == [(i, [str(i), str(i), "3"]) for i in range(3)]
    assert {(m["distributed"], m["count"], m["master"], m["members"], m["ip"], m["yaml"]) for m in seen} == {
        (True, 3, "0", 3, "127.0.0.1", True)
    }


def test_on_demand_input_is_fetched_before_start_and_marked_in_inputs_json(dags_folder: Path) -> None:
    yaml = step(
        "read",
        "cp /valohai/config/inputs.json /valohai/outputs/; cat /valohai/inputs/data/data.txt",
        """
        inputs:
          - {name: data, default: data.txt, download: on-demand}
        """,
    )
    yaml += _pipeline("read", "step: read")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-ondemand", yaml, files={"data.txt": "payload\n"})
    assert outcome.state == "success", outcome.states
    described = json.loads(_output(outcome.xcom("read"), "inputs.json"))["data"]
    (file,) = described["files"]
    assert file["path"] == "/valohai/inputs/data/data.txt"
    assert (file["download_intent"], file["input_id"]) == ("on-demand", described["input_id"])

    warnings = compile_project(dags_folder / f"{PREFIX}-ondemand" / "valohai.yaml").diagnostics
    (warning,) = [d for d in warnings if "on-demand" in d.message]
    assert (warning.location.line, warning.location.column) == (6, 41)
    assert "fetched before the command starts" in warning.message


def test_a_task_blueprints_stop_condition_stops_each_execution_that_meets_it(dags_folder: Path) -> None:
    """dag.test() runs a batch of ready executions whole, so the skip of the siblings that have not
    started is seen with the real scheduler (tests/e2e/test_stop_condition.py)."""
    yaml = step(
        "train",
        r"printf '\173"
        + '"score": %s}'
        + r"\n' {parameter-value:n}; [ {parameter-value:n} -lt 2 ] || sleep 120",
        "parameters:\n  - {name: n, type: integer, default: 0}",
    )
    yaml += textwrap.dedent(
        """\
        - task:
            name: sweep
            step: train
            stop-condition: score >= 2
            parameters:
              - {name: n, style: multiple, rules: {items: [1, 2, 3]}}
        """
    )
    yaml += _pipeline("train", "task: sweep", kind="task")
    outcome = run_pipeline(dags_folder, f"{PREFIX}-taskstop", yaml)
    assert outcome.state == "success", outcome.states
    manifests = [t.xcom_pull(task_ids="train", map_indexes=t.map_index) for t in outcome.executions("train")]
    assert [(m["metadata"]["score"], m["status"]) for m in manifests] == [
        (1, "completed"),
        (2, "stopped"),
        (3, "stopped"),
    ]
