"""The `valohai://` Asset URI scheme: what the data catalogue's changes are called in Airflow.

Public API (fixed: users schedule their own DAGs on these URIs):
- `valohai://catalogue/datum/<alias>`: datum alias `<alias>` was created or moved;
- `valohai://catalogue/dataset/<name>`: a version of dataset `<name>` was created;
- `valohai://catalogue/model/<name>`: a version of model `<name>` was created;
- `valohai://pipeline/<project>/<pipeline>`: a run of pipeline `<pipeline>` of project folder
  `<project>` succeeded (one event per successful run; see `airflow/pipeline_finished.py`).

An Airflow deployment has one artefact store (`[valohai] store_url`), so one catalogue: the host
`catalogue` names it, and moving the store does not rename every Asset. A name is one percent-encoded
path segment (catalogue names have no `/`). The Asset's name is its URI. Each event's extra says what
happened: the version (or the alias's file), the catalogue reference a node can read as an input, the
files (store URI, size, sha256; at most `MAX_EXTRA_FILES`) and the producing node try. Nothing of a
connection or variable is in it: store URIs carry no credentials.

Airflow calls `normalize` for the scheme (registered in `provider.py` under `asset-uris`), so a URI
that is not one of the forms above is refused when a DAG declares it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from valohai_airflow.store.catalogue import AliasEvent, DatasetVersion, DatumFile, ModelVersion, Producer

SCHEME = "valohai"
CATALOGUE_HOST = "catalogue"
PIPELINE_HOST = "pipeline"
#: The catalogue kinds a URI may name: the path's first segment.
AssetKind = Literal["datum", "dataset", "model"]
KINDS: tuple[AssetKind, ...] = ("datum", "dataset", "model")
#: A big dataset version lists its first files only (`file_count` says how many it has).
MAX_EXTRA_FILES = 100
#: A pipeline of many nodes lists its first parameters only (`param_count` says how many it has).
MAX_EXTRA_PARAMS = 500

Published = AliasEvent | DatasetVersion | ModelVersion


def asset_uri(kind: AssetKind, name: str) -> str:
    """The Asset URI of one catalogue name, e.g. `valohai://catalogue/dataset/images`."""
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not a catalogue kind ({', '.join(KINDS)})")
    if not name:
        raise ValueError(f"a {kind} Asset needs a name")
    return f"{SCHEME}://{CATALOGUE_HOST}/{kind}/{urllib.parse.quote(name, safe='')}"


def pipeline_uri(project: str, pipeline: str) -> str:
    """The Asset URI of a pipeline's successful runs, e.g. `valohai://pipeline/team/train`."""
    if not project or not pipeline:
        raise ValueError("a pipeline Asset needs a project and a pipeline name")
    quoted = (urllib.parse.quote(part, safe="") for part in (project, pipeline))
    return f"{SCHEME}://{PIPELINE_HOST}/{'/'.join(quoted)}"


def normalize(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult:
    """Airflow's URI handler for `valohai://`: ValueError unless one of the documented forms."""
    host = parts.netloc.lower()
    segments = parts.path.strip("/").split("/")
    catalogue = host == CATALOGUE_HOST and len(segments) == 2 and segments[0] in KINDS
    pipeline = host == PIPELINE_HOST and len(segments) == 2 and bool(segments[0])
    if not (catalogue or pipeline) or not segments[-1]:
        raise ValueError(
            f"{urllib.parse.urlunsplit(parts)!r} is not a valohai Asset URI: expected "
            f"{SCHEME}://{CATALOGUE_HOST}/<{'|'.join(KINDS)}>/<name> or "
            f"{SCHEME}://{PIPELINE_HOST}/<project>/<pipeline>"
        )
    if parts.query:
        raise ValueError(f"a valohai Asset URI has no query: {urllib.parse.urlunsplit(parts)!r}")
    return parts._replace(netloc=host)


@dataclass(frozen=True)
class CatalogueEvent:
    """One Asset event to emit: the Asset's URI and the event's extra."""

    uri: str
    extra: dict[str, Any]


def catalogue_events(published: Sequence[Published]) -> list[CatalogueEvent]:
    """The Asset events of what one try published (in the order it was published)."""
    events = []
    for record in published:
        if isinstance(record, DatasetVersion):
            events.append(
                _event(
                    "dataset",
                    record.dataset,
                    str(record.version),
                    record.reference,
                    record.files,
                    record.producer,
                )
            )
        elif isinstance(record, ModelVersion):
            event = _event(
                "model", record.model, str(record.version), record.reference, record.files, record.producer
            )
            event.extra["tags"] = list(record.tags)
            events.append(event)
        else:
            reference = f"datum://{record.file.datum_id}"  # this file, wherever the alias moves next
            events.append(
                _event("datum", record.name, str(record.seq), reference, [record.file], record.producer)
            )
    return events


def _event(
    kind: AssetKind, name: str, version: str, reference: str, files: Sequence[DatumFile], producer: Producer
) -> CatalogueEvent:
    uri = asset_uri(kind, name)
    return CatalogueEvent(
        uri,
        {
            "kind": kind,
            "name": name,
            "version": version,
            "reference": reference,
            "file_count": len(files),
            "files": [
                {"name": f.name, "uri": f.uri, "size": f.size, "sha256": f.sha256}
                for f in files[:MAX_EXTRA_FILES]
            ],
            "producer": producer.model_dump(mode="json", exclude={"kind", "user"}, exclude_none=True),
        },
    )


def pipeline_finished_extra(
    project: str, pipeline: str, dag_id: str, run_id: str, finished: datetime, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The extra of a pipeline's "finished" event: which run, when, with which Param values (JSON
    values only; the first `MAX_EXTRA_PARAMS`, `param_count` says how many the run had)."""
    shown = dict(list(params.items())[:MAX_EXTRA_PARAMS])
    return {
        "kind": "pipeline",
        "project": project,
        "name": pipeline,
        "dag_id": dag_id,
        "run_id": run_id,
        "finished": finished.isoformat(),
        "param_count": len(params),
        "params": json.loads(json.dumps(shown, default=str)),
    }
