"""Names of the run-time knobs of a pipeline (the keys of the DAG's Params / run conf).

They follow Valohai's socket syntax so they read like the edges users already write:
`train.parameter.epochs`, `train.input.dataset`, `train.variable.API_URL` (an environment variable,
like `vh exec run --var`); pipeline parameters keep their own name.
"""

from __future__ import annotations

from valohai_airflow.spec.pipeline import socket_text


def node_parameter_key(node: str, parameter: str) -> str:
    return socket_text(node, "parameter", parameter)


def node_input_key(node: str, input_name: str) -> str:
    return socket_text(node, "input", input_name)


def node_variable_key(node: str, name: str) -> str:
    return socket_text(node, "variable", name)
