"""The data catalogue at run time: `datum://`, `dataset://` and `model://` inputs resolved into the
files they name, and a finished try's output properties published (VALOHAI.md §4.5, §9.1-9.3).

Publishing reads three properties of each output file (sidecar `*.metadata.json` or
`valohai.metadata.jsonl`):
- `valohai.alias`: one string; creates the datum alias or moves it to this file;
- `valohai.dataset-versions`: a list of `dataset://<name>/<version>` strings or objects (`uri`,
  `from`, `start_fresh`, `exclude`, `targeting_aliases`, `packaging`); every file listing a version
  becomes one of its files;
- `valohai.model-versions`: a list of `model://<name>/` strings or objects (`model_uri`,
  `model_version_tags`, `model_release_note`); the try's files listing a model make its next version.

Only a completed try publishes. Every dataset version is checked before the manifest is stored, so
one that exists already fails the stage-out (the try keeps nothing) before anything is published;
then, after the manifest, versions first, then aliases, then models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from valohai_airflow.runtime.inputs import InputError, InputSource
from valohai_airflow.runtime.manifest import ManifestFile
from valohai_airflow.store.base import StoreError
from valohai_airflow.store.catalogue import (
    AliasEvent,
    Catalogue,
    CatalogueError,
    DatasetVersion,
    DatasetVersionRequest,
    DatumFile,
    ModelVersion,
    Producer,
    check_name,
    output_datum_id,
    split_reference,
)

ALIAS = "valohai.alias"
DATASET_VERSIONS = "valohai.dataset-versions"
MODEL_VERSIONS = "valohai.model-versions"
REFERENCE_SCHEMES = ("datum://", "dataset://", "model://")


class PublicationError(CatalogueError):
    """An output property the catalogue cannot act on (a malformed alias or version)."""


def is_reference(url: str) -> bool:
    return url.startswith(REFERENCE_SCHEMES)


def input_sources(urls: Sequence[str], catalogue: Catalogue) -> list[InputSource]:
    """Each URL as an input source; a catalogue reference becomes the files it names now (with
    their datum ids, sha256 to check and properties as inputs.json metadata)."""
    sources: list[InputSource] = []
    for url in urls:
        if not is_reference(url):
            sources.append(InputSource(url))
            continue
        try:
            record, files = catalogue.lookup(url)
        except (CatalogueError, StoreError) as error:
            raise InputError(str(error)) from error
        sources += [
            InputSource(
                f.uri,
                sha256=f.sha256,
                size=f.size,
                metadata=(dict(f.properties),) if f.properties else (),
                path_hint=f.name,
                datum_id=f.datum_id,
                catalogue=tuple(dict.fromkeys((url, record))),
            )
            for f in files
        ]
    return sources


def with_lineage(
    outputs: Sequence[ManifestFile],
    published: Sequence[AliasEvent | DatasetVersion | ModelVersion],
    execution_id: str,
) -> list[ManifestFile]:
    """The outputs with the datum id and the catalogue records each became (a dataset version's
    files from its `from` version are not this try's and name no output)."""
    became: dict[str, list[str]] = {}
    for record in published:
        files = [record.file] if isinstance(record, AliasEvent) else record.files
        for f in files:
            became.setdefault(f.datum_id, []).append(record.reference)
    out = []
    for output in outputs:
        datum_id = output_datum_id(execution_id, output.path)
        references = became.get(datum_id)
        out.append(
            output.model_copy(update={"datum_id": datum_id, "catalogue": references})
            if references
            else output
        )
    return out


@dataclass
class _Dataset:
    request: DatasetVersionRequest
    files: list[DatumFile] = field(default_factory=list)


@dataclass
class _Model:
    files: list[DatumFile] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    release_note: str | None = None


@dataclass
class Publication:
    """What one try's outputs ask the catalogue for."""

    aliases: dict[str, DatumFile] = field(default_factory=dict)
    datasets: dict[tuple[str, str], _Dataset] = field(default_factory=dict)
    models: dict[str, _Model] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    published: list[AliasEvent | DatasetVersion | ModelVersion] = field(default_factory=list)  # by publish()

    def __bool__(self) -> bool:
        return bool(self.aliases or self.datasets or self.models)

    def check(self, catalogue: Catalogue) -> None:
        """VersionExistsError for a dataset version that exists already, before anything is stored."""
        for dataset, version in self.datasets:
            catalogue.check_new_dataset_version(dataset, version)

    def publish(self, catalogue: Catalogue, producer: Producer) -> list[str]:
        """Store the records (kept in `published`, to become Asset events); returns log lines saying what
        was published."""
        log = list(self.notes)
        for (dataset, version), wanted in self.datasets.items():
            request = wanted.request
            record = catalogue.create_dataset_version(
                dataset,
                version,
                wanted.files,
                producer,
                base=None if request.start_fresh else request.base,
                exclude=request.exclude,
                targeting_aliases=request.targeting_aliases,
            )
            self.published.append(record)
            log.append(f"created dataset version {record.reference} with {len(record.files)} file(s)")
        for name, file in self.aliases.items():
            event = catalogue.set_alias(name, file, producer)
            self.published.append(event)
            log.append(f"datum alias datum://{name} now points at {file.name} (change {event.seq})")
        for model, found in self.models.items():
            made = catalogue.create_model_version(
                model, found.files, producer, tags=found.tags, release_note=found.release_note
            )
            self.published.append(made)
            log.append(f"created model version {made.reference} with {len(made.files)} file(s)")
        return log


def plan_publication(outputs: Sequence[ManifestFile], execution_id: str) -> Publication:
    """Read the catalogue properties of a try's outputs; PublicationError names file and value."""
    publication = Publication()
    for output in outputs:
        props = output.properties
        if not any(k in props for k in (ALIAS, DATASET_VERSIONS, MODEL_VERSIONS)) or output.uri is None:
            continue
        file = DatumFile(
            datum_id=output_datum_id(execution_id, output.path),
            name=output.path,
            uri=output.uri,
            size=output.size,
            sha256=output.sha256,
            properties=dict(props),
        )
        try:
            if ALIAS in props:
                _add_alias(publication, file, props[ALIAS])
            for item in _as_list(props.get(DATASET_VERSIONS, []), DATASET_VERSIONS):
                _add_dataset(publication, file, item)
            for item in _as_list(props.get(MODEL_VERSIONS, []), MODEL_VERSIONS):
                _add_model(publication, file, item)
        except CatalogueError as error:
            raise PublicationError(f"output {output.path!r}: {error}") from error
    return publication


def _as_list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise PublicationError(f"{key} must be a list, not {value!r}")
    return value


def _add_alias(publication: Publication, file: DatumFile, name: Any) -> None:
    if not isinstance(name, str):
        raise PublicationError(f"{ALIAS} must be one string (an alias name), not {name!r}")
    check_name(name, "datum alias")
    earlier = publication.aliases.get(name)
    if earlier is not None:
        raise PublicationError(
            f"{ALIAS} {name!r} is claimed by {earlier.name!r} too; an alias names one file"
        )
    publication.aliases[name] = file


def _add_dataset(publication: Publication, file: DatumFile, item: Any) -> None:
    try:
        request = DatasetVersionRequest.model_validate({"uri": item} if isinstance(item, str) else item)
    except ValidationError as error:
        raise PublicationError(f"{DATASET_VERSIONS}: {item!r} is not a version: {error}") from error
    scheme, dataset, version = split_reference(request.uri)
    if scheme != "dataset" or version is None:
        raise PublicationError(f"{DATASET_VERSIONS}: {request.uri!r}: expected dataset://<name>/<version>")
    wanted = publication.datasets.setdefault((dataset, version), _Dataset(request))
    if wanted.request != request and not isinstance(item, str):
        if wanted.request.model_fields_set <= {"uri"}:  # the first file gave the plain form
            wanted.request = request
        else:
            raise PublicationError(
                f"{DATASET_VERSIONS}: {request.uri} is given with different options by two files"
            )
    if request.packaging:
        publication.notes.append(
            f"{request.uri}: packaging is not supported; its files are stored one by one"
        )
    wanted.files.append(file)


def _add_model(publication: Publication, file: DatumFile, item: Any) -> None:
    tags: list[Any] = []
    note: Any = None
    if isinstance(item, str):
        uri = item
    elif isinstance(item, dict) and isinstance(item.get("model_uri"), str):
        uri, tags, note = (
            item["model_uri"],
            item.get("model_version_tags") or [],
            item.get("model_release_note"),
        )
    else:
        raise PublicationError(f"{MODEL_VERSIONS}: {item!r}: expected model://<name>/ or {{model_uri: ...}}")
    rest = uri.removeprefix("model://").rstrip("/")
    if not uri.startswith("model://") or not rest or "/" in rest:
        raise PublicationError(
            f"{MODEL_VERSIONS}: {uri!r}: expected model://<name>/ (the catalogue assigns the version)"
        )
    found = publication.models.setdefault(check_name(rest, "model"), _Model())
    found.files.append(file)
    found.tags += [str(t) for t in tags if str(t) not in found.tags]
    found.release_note = found.release_note or (str(note) if note is not None else None)
