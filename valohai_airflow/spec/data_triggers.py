"""A trigger's data condition (`after:` in valohai-airflow.yaml): run when the data catalogue changes.

    triggers:
      - title: retrain on new images
        pipeline: train
        after: {dataset: images}          # or a list: any of them starts a run
        parameters:
          train.input.images: "{event.reference}"

One condition names one of `dataset:` (a version of it was created), `alias:` (a datum alias was
created or moved), `model:` (a version of it was created) or `pipeline:` (a run of that pipeline of
the same project succeeded); `asset_uris.py` turns it into the Asset the DAG is scheduled on. A
trigger's parameter value may name the triggering event's fields as placeholders, replaced in Python
when the run starts (never through Jinja); which fields there are depends on the kind of event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, model_validator

from valohai_airflow.spec._base import SpecModel, Str, spec_error

#: `{event.<field>}` in a data trigger's parameter values: the fields of the triggering event's extra
#: (asset_uris.py), by the kind of condition; `uri` is the Asset's.
EVENT_FIELDS = ("version", "reference", "name", "uri")
PIPELINE_EVENT_FIELDS = ("run_id", "dag_id", "finished", "name", "project", "uri")
PLACEHOLDER = re.compile(r"\{event\.([A-Za-z_]+)\}")


class DataCondition(SpecModel):
    """One catalogue name whose change starts a run."""

    kind: ClassVar[str] = "data condition"

    dataset: Str | None = None
    alias: Str | None = None
    model: Str | None = None
    pipeline: Str | None = None

    @model_validator(mode="after")
    def _one_name(self) -> DataCondition:
        if sum(v is not None for v in (self.dataset, self.alias, self.model, self.pipeline)) != 1:
            raise spec_error(
                "data_condition",
                "a data condition names exactly one of 'dataset', 'alias', 'model' or 'pipeline'",
            )
        return self

    @property
    def asset(self) -> tuple[str, str]:
        """(the catalogue kind of `asset_uris`, or "pipeline"; the name)."""
        if self.dataset is not None:
            return "dataset", self.dataset
        if self.alias is not None:
            return "datum", self.alias
        if self.pipeline is not None:
            return "pipeline", self.pipeline
        assert self.model is not None, "validated: one name"
        return "model", self.model

    @property
    def event_fields(self) -> tuple[str, ...]:
        return PIPELINE_EVENT_FIELDS if self.pipeline is not None else EVENT_FIELDS


def _one_or_list(value: Any) -> Any:
    return value if isinstance(value, list | tuple) else [value]


DataConditions = Annotated[tuple[DataCondition, ...], BeforeValidator(_one_or_list)]


def placeholder_problem(value: Any, conditions: tuple[DataCondition, ...] = ()) -> str | None:
    """Why a trigger parameter's `{event.…}` placeholders cannot be filled (None: they can): every
    field must be one the event of each condition has, whichever of them fires."""
    candidates = conditions[0].event_fields if conditions else EVENT_FIELDS + PIPELINE_EVENT_FIELDS
    fields = list(dict.fromkeys(f for f in candidates if all(f in c.event_fields for c in conditions)))
    for text in _strings(value):
        for field in PLACEHOLDER.findall(text):
            if field not in fields:
                return f"placeholder event.{field} is not an event field (they are {', '.join(fields)})"
    return None


def has_placeholder(value: Any) -> bool:
    return any(PLACEHOLDER.search(text) for text in _strings(value))


def fill_placeholders(value: Any, event: Mapping[str, Any]) -> Any:
    """`value` with each `{event.<field>}` replaced by the event's field (strings, lists of strings)."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: str(event.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [fill_placeholders(v, event) for v in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
