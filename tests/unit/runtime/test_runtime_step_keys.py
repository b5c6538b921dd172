"""Run-time parts of keys that act in the container, without Docker: the stop-condition watch over
output chunks, a distributed member's config as valohai-utils reads it, on-demand inputs.json entries."""

from __future__ import annotations

from typing import Any

from valohai.internals.distributed_config import DistributedConfig

from valohai_airflow.plan.model import NodeKind, NodePlan
from valohai_airflow.runtime.config_files import InputFileEntry, inputs_json
from valohai_airflow.runtime.distributed import distributed_group
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.stop_condition import StopWatch
from valohai_airflow.spec.step import Step
from valohai_airflow.spec.task import Task


def test_the_watch_fires_once_at_the_first_point_after_which_the_condition_holds() -> None:
    watch = StopWatch("stop > 1 and loss < 0.5")
    assert not watch.feed(b'{"loss": 0.4, "stop": 0}\nplain log\n{"st')  # a line split across chunks
    assert not watch.feed(b'op": 1}\n')
    assert watch.feed(b'{"stop": 2}\n{"stop": 3}\n')
    assert (
        watch.reason == "stop-condition `stop > 1 and loss < 0.5` holds after the metadata point {'stop': 2}"
    )
    assert not watch.feed(b'{"stop": 4}\n')  # once


def test_a_key_never_printed_never_fires() -> None:
    watch = StopWatch("accuracy >= 0.99")
    assert not watch.feed(b'{"loss": 0.1}\n{"epoch": 9}\n')
    assert watch.reason is None


def _node(task: Task) -> NodePlan:
    step = Step(name="w", image="i", command=("c",))
    return NodePlan(name="train", task_id="train", kind=NodeKind.TASK, step=step, blueprint=task)


def _member(map_index: int, network: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    task = Task(name="g", step="w", type="distributed", execution_count=3, parameters=[])
    group = distributed_group(_node(task), ExecutionKey("dag", "run", "train", map_index, 1), network)
    assert group is not None
    return group


def test_each_member_gets_its_rank_count_and_master_as_valohai_utils_reads_them() -> None:
    for index in range(3):
        variables, data = _member(index, "host")
        assert variables == {
            "VH_DIST_MEMBER_ID": str(index),
            "VH_DIST_MEMBER_INDEX": str(index),
            "VH_DIST_MEMBER_COUNT": "3",
        }
        config = DistributedConfig.from_json_data(data)
        me = next(m for m in config.members if m.member_id == config.member_id)
        master = next(m for m in config.members if m.is_master)
        assert (me.rank, config.required_count, master.member_id) == (index, 3, "0")
        assert master.primary_local_ip == "127.0.0.1"
        assert data["self"] == data["members"][index]
    first, second = _member(0, None)[1], _member(1, None)[1]
    assert first["config"]["group_name"] == second["config"]["group_name"]  # one group
    assert first["members"][1]["job_id"] == second["self"]["job_id"]
    assert first["members"][0]["network"]["local_ips"] == []  # not the host network: not known in advance


def test_other_nodes_are_not_distributed() -> None:
    task = Task(name="g", step="w", type="grid_search", parameters=[])
    assert distributed_group(_node(task), ExecutionKey("dag", "run", "train", 0, 1), "host") is None


def test_on_demand_inputs_are_described_as_valohai_describes_them() -> None:
    files = {
        "data": [InputFileEntry("a.csv", "file:///a.csv", 3, "ab")],
        "other": [InputFileEntry("b.csv", None, 1, "cd")],
    }
    described = inputs_json(files, on_demand={"data": "id-1"})
    assert described["data"]["input_id"] == "id-1"
    (entry,) = described["data"]["files"]
    assert (entry["path"], entry["input_id"], entry["download_intent"]) == (
        "/valohai/inputs/data/a.csv",
        "id-1",
        "on-demand",
    )
    assert "input_id" not in described["other"]
    assert "download_intent" not in described["other"]["files"][0]


def test_the_watch_names_which_of_several_conditions_held() -> None:
    watch = StopWatch("loss < 0.1", "score >= 2")
    assert watch.feed('{"score": 2}\n')
    assert watch.held == "score >= 2"
