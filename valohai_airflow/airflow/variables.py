"""A node's environment variables at task start, through Airflow's own API: Airflow Variables and
Connections are read with the Task SDK (`Variable.get`, `Connection.get`), which goes through the
configured secrets backends (environment variables, the metadata DB via the API server, Vault, AWS
Secrets Manager, ...), and every secret value is registered with Airflow's secret masker before the
container starts, so the task log shows `***` where the container prints it.

The sources and precedence are the plan's (plan/variables.py); the rules are runtime/variables.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Connection, Variable
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowRuntimeError, ErrorType
from airflow.sdk.log import mask_secret

from valohai_airflow.plan.model import NodePlan
from valohai_airflow.runtime.variables import ResolvedVariables, resolve_variables


class AirflowSecrets:
    """`SecretSource` over Airflow's Variables and Connections (a missing one is None; any other
    backend failure, like access denied, fails the task as it is)."""

    def variable(self, key: str) -> str | None:
        try:
            value = Variable.get(key)
        except AirflowRuntimeError as error:
            if error.error.error == ErrorType.VARIABLE_NOT_FOUND:
                return None
            raise
        return None if value is None else str(value)

    def connection(self, conn_id: str) -> Mapping[str, Any] | None:
        try:
            connection = Connection.get(conn_id)
        except AirflowNotFoundException:
            return None
        return {
            "uri": connection.get_uri(),
            "conn_type": connection.conn_type,
            "host": connection.host,
            "login": connection.login,
            "password": connection.password,
            "schema": connection.schema,
            "port": connection.port,
            "extra": connection.extra,
            "extra_dejson": connection.extra_dejson if connection.extra else {},
        }


def node_environment(node: NodePlan, conf: Mapping[str, Any]) -> ResolvedVariables:
    """The node's variables for its container, every secret value already masked."""
    resolved = resolve_variables(node, conf, AirflowSecrets())
    for value in resolved.secret_values:
        mask_secret(value)
    return resolved
