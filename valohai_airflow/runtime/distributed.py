"""Executions of a `type: distributed` task blueprint: what Valohai tells each member of the group
(VALOHAI.md §9.9), so code using `valohai.distributed` finds its rank, the member count and the master.

Each execution (one map index of the task node) gets `VH_DIST_MEMBER_ID` (its map index),
`VH_DIST_MEMBER_INDEX` (the same, zero-based) and `VH_DIST_MEMBER_COUNT`, and
`/valohai/config/distributed.json` (+ `.yaml`) in the shape valohai-utils parses: the group, this
member's id, the required count and every member with its job id and network. valohai-utils ranks
members by their ids, so member `0` (map index 0) is the master.

What cannot be known before the containers run is filled honestly: Valohai waits until the whole
group is online and then writes the members' addresses; here the members are Airflow's mapped task
instances, started when the executor has room, and the file is written before the container starts.
On the host network (`network: host`, or the step's `VH_DOCKER_NETWORK: host`, as Valohai's
distributed examples set it) members on one worker reach each other at 127.0.0.1, which is their
`local_ips`; on any other network their addresses are not known in advance and `local_ips` is empty
(valohai-utils' `primary_local_ip` then raises). The other members' `job_id`s assume their try number
equals this one's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from valohai_airflow.plan.blueprints import variant_count
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.runtime.ids import ExecutionKey, execution_id, job_id

HOST_NETWORK = "host"


def distributed_group(
    node: NodePlan, key: ExecutionKey, network: str | None
) -> tuple[dict[str, str], dict[str, Any]] | None:
    """(the VH_DIST_* variables, distributed.json's content) for a distributed task's execution,
    None for any other node."""
    blueprint = node.blueprint
    if blueprint is None or blueprint.type != "distributed" or key.map_index < 0:
        return None
    count = max(variant_count(blueprint), key.map_index + 1)
    announced = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    local_ips = ["127.0.0.1"] if network == HOST_NETWORK else []
    members = [
        {
            "announce_time": announced,
            "identity": f"{key.node}-{index}",
            "job_id": job_id(execution_id(key.dag_id, key.run_id, key.node, index, key.try_number)),
            "member_id": str(index),
            "network": {"exposed_ports": {}, "local_ips": local_ips, "public_ips": []},
        }
        for index in range(count)
    ]
    group = execution_id(key.dag_id, key.run_id, key.node, -1, 0)
    config = {
        "config": {"group_name": f"task-{group}", "member_id": str(key.map_index), "required_count": count},
        "members": members,
        "self": members[key.map_index],
    }
    variables = {
        "VH_DIST_MEMBER_ID": str(key.map_index),
        "VH_DIST_MEMBER_INDEX": str(key.map_index),
        "VH_DIST_MEMBER_COUNT": str(count),
    }
    return variables, config
