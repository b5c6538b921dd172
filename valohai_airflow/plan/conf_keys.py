"""Names of the run-time knobs of a pipeline (the keys of the DAG's Params / run conf).

They follow Valohai's socket syntax so they read like the edges users already write:
`train.parameter.epochs`, `train.input.dataset`, `train.variable.API_URL` (an environment variable,
like `vh exec run --var`); pipeline parameters keep their own name. The `valohai.reuse.*` keys
name an earlier run and the nodes to take from it (runtime/reuse_nodes.py); `valohai.adhoc` names
the ad hoc code snapshot the nodes run (runtime/adhoc.py).
"""

from __future__ import annotations

from valohai_airflow.spec.pipeline import socket_text

REUSE_RUN_KEY = "valohai.reuse.run"  # the run id whose nodes are reused
REUSE_NODES_KEY = "valohai.reuse.nodes"  # node names: these are reused
REUSE_UPSTREAM_OF_KEY = "valohai.reuse.upstream_of"  # node names: every node upstream of these is reused
ADHOC_KEY = "valohai.adhoc"  # {uri, sha256, commit}: the nodes run this snapshot's code (runtime/adhoc.py)


def node_parameter_key(node: str, parameter: str) -> str:
    return socket_text(node, "parameter", parameter)


def node_input_key(node: str, input_name: str) -> str:
    return socket_text(node, "input", input_name)


def node_variable_key(node: str, name: str) -> str:
    return socket_text(node, "variable", name)
