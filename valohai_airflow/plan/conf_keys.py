"""Names of the run-time knobs of a pipeline (the keys of the DAG's Params / run conf).

They follow Valohai's socket syntax so they read like the edges users already write:
`train.parameter.epochs`, `train.input.dataset`; pipeline parameters keep their own name.
"""

from __future__ import annotations

from valohai_airflow.spec.pipeline import socket_text


def node_parameter_key(node: str, parameter: str) -> str:
    return socket_text(node, "parameter", parameter)


def node_input_key(node: str, input_name: str) -> str:
    return socket_text(node, "input", input_name)


def node_environment_key(node: str, variable: str) -> str:
    """A step's environment variable in the form of its own DAG (plan/standalone.py)."""
    return socket_text(node, "environment-variable", variable)
