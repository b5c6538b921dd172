"""A node's environment variables resolved at task start, without Airflow: the plan's sources
(plan/variables.py) read through a `SecretSource` (the airflow layer's reads Airflow Variables and
Connections through the secrets backends) and the run conf.

Every problem of the node is collected and raised at once, before any container starts: an Airflow
Variable or Connection that does not exist, a Connection field that is empty, a required variable
with no source, a run conf value that is not a string. The messages name node, variable and source,
never a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.model import NodePlan
from valohai_airflow.plan.variables import CONNECTION, NONE, VARIABLE, VariablePlan
from valohai_airflow.spec.sidecar import SIDECAR_NAME

EXTRA_PREFIX = "extra."


class VariableError(ValohaiAirflowError):
    """A node's variables cannot all be given: the container is not started."""


class SecretSource(Protocol):
    """Where Airflow Variables and Connections are read (the airflow layer: its secrets backends)."""

    def variable(self, key: str) -> str | None:
        """The Variable's value; None when no backend has it."""

    def connection(self, conn_id: str) -> Mapping[str, Any] | None:
        """The Connection's fields (`uri`, `conn_type`, `host`, `login`, `password`, `schema`, `port`,
        `extra` as text, `extra_dejson` as a dict); None when no backend has it."""


class _NoSecrets:
    """A `SecretSource` without Airflow: no Variable or Connection exists (literals and the run conf
    still resolve; a node that needs a secret fails naming it)."""

    def variable(self, key: str) -> str | None:
        return None

    def connection(self, conn_id: str) -> Mapping[str, Any] | None:
        return None


NO_SECRETS: SecretSource = _NoSecrets()


@dataclass(frozen=True)
class ResolvedVariables:
    """What the container gets, and which of it is secret (for masking, never for storing)."""

    environment: dict[str, str] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()

    @property
    def secret_values(self) -> list[str]:
        return [self.environment[name] for name in sorted(self.secret_names) if name in self.environment]

    def redacted(self, lines: Iterable[str]) -> list[str]:
        """The container's log lines with every secret value replaced by `***` (as Airflow's masker
        shows them in the task log), before metadata is read from them or they reach a message."""
        secrets = sorted({v for v in self.secret_values if v}, key=len, reverse=True)
        if not secrets:
            return list(lines)
        out = []
        for line in lines:
            for secret in secrets:
                line = line.replace(secret, "***")
            out.append(line)
        return out

    def without(self, names: Iterable[str]) -> ResolvedVariables:
        """Minus the variables whose edges brought nothing (a failed upstream with `on-error: continue`)."""
        dropped = set(names)
        return ResolvedVariables(
            {k: v for k, v in self.environment.items() if k not in dropped}, self.secret_names - dropped
        )


def connection_field(fields: Mapping[str, Any], name: str) -> str | None:
    """One field of a connection as text (`""` → the URI); None or "" when it is empty."""
    if name.startswith(EXTRA_PREFIX):
        extra = fields.get("extra_dejson") or {}
        value = extra.get(name[len(EXTRA_PREFIX) :]) if isinstance(extra, Mapping) else None
    else:
        value = fields.get(name or "uri")
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _where(node: str, variable: VariablePlan) -> str:
    return (
        f"node {node!r}: variable {variable.name!r} ({variable.source_text}, declared in {variable.declared})"
    )


def _from_source(node: str, variable: VariablePlan, source: SecretSource) -> tuple[str | None, str | None]:
    """(value, problem) of a plan source."""
    if variable.kind == VARIABLE:
        value = source.variable(variable.key)
        if value is None:
            return None, (
                f"{_where(node, variable)}: Airflow has no Variable {variable.key!r}; create it (Admin → "
                "Variables, `airflow variables set`, or a secrets backend) or change the source"
            )
        return value, None
    if variable.kind == CONNECTION:
        fields = source.connection(variable.key)
        if fields is None:
            return None, (
                f"{_where(node, variable)}: Airflow has no Connection {variable.key!r}; create it (Admin → "
                "Connections, `airflow connections add`, or a secrets backend) or change the source"
            )
        value = connection_field(fields, variable.field)
        if value is None:
            return None, (
                f"{_where(node, variable)}: field {variable.field or 'uri'!r} of Airflow Connection "
                f"{variable.key!r} is empty; fill it in or pick another field"
            )
        return value, None
    if variable.kind == NONE:
        return None, None
    return variable.value, None


def resolve_variables(node: NodePlan, conf: Mapping[str, Any], source: SecretSource) -> ResolvedVariables:
    """The node's environment: each variable from its source, a non-secret one the run conf's
    `<node>.variable.<NAME>` when given. Raises VariableError naming every problem."""
    environment: dict[str, str] = {}
    secrets: set[str] = set()
    problems: list[str] = []
    for variable in node.variables:
        key = variable.conf_key(node.name)
        given = conf.get(key) if variable.settable else None
        if given is not None:
            if not isinstance(given, str):
                problems.append(
                    f"{_where(node.name, variable)}: run conf {key!r} must be a string, got {type(given).__name__}"
                )
                continue
            environment[variable.name] = given
            continue
        value, problem = _from_source(node.name, variable, source)
        if problem:
            problems.append(problem)
        elif value is not None:
            environment[variable.name] = value
            if variable.secret:
                secrets.add(variable.name)
        elif variable.required:
            problems.append(
                f"{_where(node.name, variable)}: it has no value and valohai.yaml says `optional: false`; "
                f"give it a source in `variables:` of {SIDECAR_NAME} (of the project, the pipeline, the step "
                "or the node: a `value`, an Airflow `variable` or `connection`)"
                + (f", or a value in the run conf as {key!r}" if variable.settable else "")
            )
    if problems:
        raise VariableError("; ".join(problems) + ". The container was not started")
    return ResolvedVariables(environment, frozenset(secrets))
