"""Run-time environment variables of valohai-airflow.yaml: what Valohai's project environment variables,
secrets and environment-variable groups are here.

A variable takes its value from a literal (`value`), an Airflow Variable (`variable: <key>`) or an
Airflow Connection (`connection: <conn id>`, one `field` of it, or without one the whole connection as
a URI). Variable and Connection values are read on the worker when the task starts, through Airflow's
secrets backends, and are secret by default: masked in the task log, never written into the plan,
XCom, the manifest, the docs or the store. A literal is not secret unless `secret: true`.

They are declared at four levels (`variables:` of the project, of a pipeline, of a step under
`steps:`, of a node under `pipelines.<p>.nodes:`), and in named groups (`variable_groups:`) that a
step's `environment-variable-groups` in valohai.yaml lists. A plain string is short for `value:`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, model_validator

from valohai_airflow.spec._base import Bool, SpecModel, Str, spec_error, to_plain

ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Valohai's own prefix: the `VH_*` variables the runtime sets win over any declared here.
SYSTEM_PREFIX = "VH_"
#: `VH_DOCKER_NETWORK` is a step's own knob (plan/machines.py), not a system variable.
SYSTEM_ALLOWED = frozenset({"VH_DOCKER_NETWORK"})
#: The fields of an Airflow Connection a variable may take; `extra.<key>` reads one key of its extra.
CONNECTION_FIELDS = ("uri", "conn_type", "host", "login", "password", "schema", "port", "extra")
_FIELD_RE = r"^(uri|conn_type|host|login|password|schema|port|extra|extra\.\S+)$"


def _check_field(value: str) -> str:
    if not re.match(_FIELD_RE, value):
        raise spec_error(
            "connection_field",
            "{value!r} is not a field of an Airflow Connection; use one of {fields} or 'extra.<key>'",
            {"value": value, "fields": ", ".join(CONNECTION_FIELDS)},
        )
    return value


ConnectionField = Annotated[
    Str, AfterValidator(_check_field), Field(json_schema_extra={"pattern": _FIELD_RE})
]
Key = Annotated[str, Field(strict=True, pattern=r"^\S+$")]


class VariableSpec(SpecModel):
    """One environment variable: exactly one of `value`, `variable`, `connection`."""

    kind: ClassVar[str] = "variable"

    value: Str | None = None
    variable: Key | None = None  # an Airflow Variable's key
    connection: Key | None = None  # an Airflow Connection's conn id
    field: ConnectionField | None = None  # None: the whole connection as a URI
    secret: Bool | None = None  # None: secret unless a literal
    description: Str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        """`NAME: text` is short for `NAME: {value: text}`."""
        if isinstance(data, str):
            return {"value": data}
        if data is None or isinstance(data, bool | int | float):
            raise spec_error(
                "variable_value",
                "must be a string (quote it: '\"{value}\"'), or a mapping with one of value, variable, connection",
                {"value": to_plain(data)},
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> VariableSpec:
        given = [k for k in ("value", "variable", "connection") if getattr(self, k) is not None]
        if len(given) != 1:
            raise spec_error(
                "variable_source",
                "needs exactly one of 'value', 'variable' (an Airflow Variable's key) or 'connection' "
                "(an Airflow Connection's id), got {given}",
                {"given": ", ".join(repr(g) for g in given) or "none"},
            )
        if self.field is not None and self.connection is None:
            raise spec_error("variable_source", "'field' belongs with 'connection'", {})
        return self

    @property
    def is_secret(self) -> bool:
        """Variables and Connections are secret unless `secret: false`; literals only with `secret: true`."""
        return self.secret if self.secret is not None else self.value is None


def _check_names(value: dict[str, VariableSpec]) -> dict[str, VariableSpec]:
    for name in value:
        if not re.match(ENV_NAME_RE, name):
            raise spec_error(
                "variable_name",
                "{name!r} is not an environment variable name (letters, digits and _, not starting with a digit)",
                {"name": name},
            )
        if name.startswith(SYSTEM_PREFIX) and name not in SYSTEM_ALLOWED:
            raise spec_error(
                "variable_name",
                "{name!r}: names starting with VH_ are Valohai's system variables, set by the runtime",
                {"name": name},
            )
    return value


Variables = Annotated[dict[str, VariableSpec], AfterValidator(_check_names)]


class NodeSettings(SpecModel):
    """A node's own settings under `pipelines.<pipeline>.nodes:` of valohai-airflow.yaml."""

    kind: ClassVar[str] = "node settings"

    variables: Variables = Field(default_factory=dict)


class StepSettings(SpecModel):
    """A step's own settings under `steps:` of valohai-airflow.yaml (every node that runs it)."""

    kind: ClassVar[str] = "step settings"

    variables: Variables = Field(default_factory=dict)
