"""`step_dags:` and `task_dags:` of valohai-airflow.yaml: which steps and task blueprints get a DAG of their own.

`true` (the default: what a Valohai user expects, every step can be run as an execution and every
blueprint as a Task), `false` (none), or a list of names (only those). The names keep their
file:line:column, so one valohai.yaml lacks is an error at its line (plan/standalone.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from valohai_airflow.spec._base import UNKNOWN_LOCATION, spec_error, to_plain
from valohai_airflow.spec.diagnostics import Location
from valohai_airflow.spec.yaml_loader import YamlList


@dataclass(frozen=True, slots=True)
class ChosenName:
    """One name of a `step_dags:` / `task_dags:` list, where it is written."""

    name: str
    location: Location = UNKNOWN_LOCATION


def _choice(value: Any) -> bool | tuple[ChosenName, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, ChosenName) for v in value):
        return tuple(value)  # already validated (a model copy)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        locations = value.item_locations if isinstance(value, YamlList) else []
        return tuple(
            ChosenName(name, locations[i] if i < len(locations) else UNKNOWN_LOCATION)
            for i, name in enumerate(value)
        )
    raise spec_error(
        "dag_choice", "must be true, false or a list of names, got {value!r}", {"value": to_plain(value)}
    )


DagChoice = Annotated[
    bool | tuple[ChosenName, ...],
    PlainValidator(_choice),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}]}),
]


def is_chosen(choice: bool | tuple[ChosenName, ...], name: str) -> bool:
    """Whether `name` gets its DAG under `choice`."""
    if isinstance(choice, bool):
        return choice
    return any(item.name == name for item in choice)
