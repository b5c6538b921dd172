"""The data catalogue: datum aliases, dataset versions and model versions (VALOHAI.md §9.1-9.3),
kept in the artefact store under `catalogue/`, local and S3 alike.

Every change is one immutable JSON object, never rewritten, so history is kept by construction:
- `datums/<id>.json`: one file (store URI, size, sha256, properties) with its producer;
- `aliases/<alias>/<seq>.json`: the alias pointed at a datum (the newest `seq` is its target);
- `datasets/<name>/versions/<version>.json`: a version's files; created only if absent, so an
  existing version is refused as Valohai refuses it;
- `datasets/<name>/log/<seq>.json`: the dataset's events in order: a version created (the newest
  is `latest`) or a dataset alias (`targeting_aliases`) moved to a version;
- `models/<name>/<version>.json`: model version 1, 2, ... (Valohai's counter; `latest` the highest).

Appending takes the next free `seq` (or model counter) with `create_bytes`, which of two racing
writers lets exactly one win (a hard link on the local store, `If-None-Match: *` on S3); the loser
reads again and takes the next number. Finding the newest is one listing of the name's folder.
Each event names its kind, its reference URI (`datum://…`, `dataset://…/…`, `model://…/…`), its
files and its producer, so that it can become an Airflow Asset event as it is.
"""

from __future__ import annotations

import contextlib
import difflib
import getpass
import json
import re
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.store.base import (
    ArtifactStore,
    ObjectExistsError,
    ObjectNotFoundError,
    key_path,
    path_key,
)

PREFIX = "catalogue"
SCHEMA_VERSION = 1
LATEST = "latest"
#: How often an append retries after losing the race for a number to another writer.
MAX_APPEND_ATTEMPTS = 50
#: Datum ids of our own files (fixed namespace: ids must not change between versions).
DATUM_NAMESPACE = uuid.UUID("2b0f4f57-7c0e-5d4a-a2a4-1f3a3c6d9e10")
_SEQ_DIGITS = 10
_MODEL_VERSION = re.compile(r"^v?(\d+)$")
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")

Kind = Literal["alias", "dataset", "model"]
#: Each kind's folder below `catalogue/`, in listing order.
_FOLDERS: dict[Kind, str] = {"alias": "aliases", "dataset": "datasets", "model": "models"}
_M = TypeVar("_M", bound=BaseModel)


class CatalogueError(ValohaiAirflowError):
    """A catalogue operation that cannot be done as asked (bad name, unknown reference, ...)."""


class UnknownReferenceError(CatalogueError):
    """A `datum://`, `dataset://` or `model://` reference the catalogue does not hold."""


class VersionExistsError(CatalogueError):
    """A dataset version that exists already: versions are immutable (Valohai refuses them too)."""

    def __init__(self, reference: str, existing: DatasetVersion) -> None:
        self.reference = reference
        super().__init__(
            f"dataset version {reference} exists already (created {existing.producer.at:%Y-%m-%d %H:%M:%S} "
            f"UTC by {existing.producer.describe()}); versions are immutable: choose a new version name"
        )


class Producer(BaseModel):
    """Who made a record: a node try (dag, run, node, execution id) or a person (`valohai-airflow data`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["execution", "manual"] = "execution"
    dag_id: str | None = None
    run_id: str | None = None
    node: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    execution_id: str | None = None
    user: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def manual(cls) -> Producer:
        try:
            user: str | None = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in a container
            user = None
        return cls(kind="manual", user=user)

    def describe(self) -> str:
        if self.kind == "manual":
            return f"user {self.user or 'unknown'} (valohai-airflow data)"
        return f"dag {self.dag_id}, run {self.run_id}, node {self.node}, execution {self.execution_id}"


class DatumFile(BaseModel):
    """One immutable file: `name` is where it lands below an input's folder (an output's path)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    datum_id: str
    name: str
    uri: str
    size: int | None = None
    sha256: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class CatalogueRecord(BaseModel):
    """What every record of the catalogue has: its schema, who made it, and the reference a node
    reads it by."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    producer: Producer

    @property
    @abstractmethod
    def reference(self) -> str:
        """The URL an input reads this record by (`datum://…`, `dataset://…`, `model://…`)."""


class DatumRecord(CatalogueRecord):
    kind: Literal["datum"] = "datum"
    file: DatumFile

    @property
    def reference(self) -> str:
        return f"datum://{self.file.datum_id}"


class AliasEvent(CatalogueRecord):
    """The datum alias `name` points at `file` from event `seq` on."""

    kind: Literal["alias"] = "alias"
    name: str
    seq: int
    file: DatumFile

    @property
    def reference(self) -> str:
        return f"datum://{self.name}"


class DatasetVersion(CatalogueRecord):
    kind: Literal["dataset-version"] = "dataset-version"
    dataset: str
    version: str
    files: list[DatumFile]
    based_on: str | None = None  # the `from` version's reference
    excluded: list[str] = Field(default_factory=list)

    @property
    def reference(self) -> str:
        return f"dataset://{self.dataset}/{self.version}"


class DatasetEvent(CatalogueRecord):
    """One line of a dataset's log: `version` created (alias None), or dataset alias `alias` moved to it."""

    kind: Literal["dataset-event"] = "dataset-event"
    dataset: str
    seq: int
    version: str
    alias: str | None = None

    @property
    def reference(self) -> str:
        return f"dataset://{self.dataset}/{self.alias or self.version}"


class ModelVersion(CatalogueRecord):
    kind: Literal["model-version"] = "model-version"
    model: str
    version: int
    files: list[DatumFile]
    tags: list[str] = Field(default_factory=list)
    release_note: str | None = None

    @property
    def reference(self) -> str:
        return f"model://{self.model}/{self.version}"


class Entry(BaseModel):
    """One name in the catalogue for listings: its kind, current target and how many events it has."""

    kind: Kind
    name: str
    current: str  # the file (alias), the latest version (dataset, model)
    events: int
    updated_at: datetime


class DatasetVersionRequest(BaseModel):
    """What an output sidecar (or `data dataset create`) asks for: `valohai.dataset-versions` in its
    string form (`uri` only) or object form."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    uri: str
    base: str | None = Field(default=None, alias="from")
    start_fresh: bool = False
    exclude: list[str] = Field(default_factory=list)
    targeting_aliases: list[str] = Field(default_factory=list)
    packaging: bool = False


def check_name(name: str, what: str) -> str:
    """Names become one key segment: no `/`, backslash or control characters, not `.`/`..`."""
    if not name or name in (".", "..") or _BAD_NAME.search(name) or len(name) > 255:
        raise CatalogueError(
            f"{what} {name!r} is not a valid name: use 1-255 characters without '/', '\\\\' or control characters"
        )
    return name


def output_datum_id(execution_id: str, path: str) -> str:
    """The datum id of an output file: stable for one try's file, so publishing twice gives one datum."""
    return str(uuid.uuid5(DATUM_NAMESPACE, json.dumps([execution_id, path])))


def registered_datum_id(uri: str, sha256: str | None) -> str:
    """The datum id of a file registered by URL: the same URL and content give the same datum."""
    return str(uuid.uuid5(DATUM_NAMESPACE, json.dumps(["registered", uri, sha256])))


def split_reference(reference: str) -> tuple[str, str, str | None]:
    """`datum://x` → (`datum`, `x`, None); `dataset://d/v` and `model://m/v` → (scheme, name, version)."""
    scheme, sep, rest = reference.partition("://")
    if not sep or scheme not in ("datum", "dataset", "model"):
        raise CatalogueError(f"{reference!r} is not a datum://, dataset:// or model:// reference")
    if scheme == "datum":
        if not rest or "/" in rest:
            raise CatalogueError(f"{reference!r}: expected datum://<alias or datum id>")
        return scheme, rest, None
    name, slash, version = rest.partition("/")
    if not name or not slash or "/" in version:
        raise CatalogueError(f"{reference!r}: expected {scheme}://<name>/<version or latest>")
    return scheme, name, version or None


def _seq_key(seq: int) -> str:
    return f"{seq:0{_SEQ_DIGITS}d}.json"


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(known)), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


class Catalogue:
    """The catalogue of one artefact store."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"Catalogue({self.store.url})"

    # --- keys and reading ---------------------------------------------------------------------

    @staticmethod
    def _folder(*parts: str) -> str:
        return "/".join([PREFIX, *(path_key(p) for p in parts)])

    def _read(self, key: str, model: type[_M]) -> _M:
        try:
            return model.model_validate(self.store.read_json(key))
        except ValidationError as error:
            raise CatalogueError(f"{self.store.uri(key)} is not a valid catalogue record: {error}") from error

    def _read_optional(self, key: str, model: type[_M]) -> _M | None:
        try:
            return self._read(key, model)
        except ObjectNotFoundError:
            return None

    def _numbered(self, folder: str) -> list[int]:
        """The numbers of the `<seq>.json` objects directly in `folder`, ascending."""
        numbers = []
        for obj in self.store.list_prefix(folder):
            name = obj.key[len(folder) + 1 :]
            if "/" not in name and name.endswith(".json") and name[:-5].isdigit():
                numbers.append(int(name[:-5]))
        return sorted(numbers)

    def _append(self, folder: str, make: Callable[[int], _M]) -> _M:
        """Store `make(n)` at the next free number of `folder`; a writer that took it first makes
        this one try the number after."""
        for _ in range(MAX_APPEND_ATTEMPTS):
            numbers = self._numbered(folder)
            number = numbers[-1] + 1 if numbers else 1
            record = make(number)
            try:
                self.store.create_bytes(record.model_dump_json().encode(), f"{folder}/{_seq_key(number)}")
                return record
            except ObjectExistsError:
                continue
        raise CatalogueError(
            f"{self.store.uri(folder)}: gave up after {MAX_APPEND_ATTEMPTS} concurrent appends"
        )

    def _names(self, kind: str) -> set[str]:
        folder = f"{PREFIX}/{kind}"
        return {key_path(o.key[len(folder) + 1 :].partition("/")[0]) for o in self.store.list_prefix(folder)}

    # --- writing ------------------------------------------------------------------------------

    def add_datum(self, file: DatumFile, producer: Producer) -> DatumRecord:
        """Record one file under its datum id (once: the same id again is the same file)."""
        record = DatumRecord(file=file, producer=producer)
        with contextlib.suppress(ObjectExistsError):
            self.store.create_bytes(record.model_dump_json().encode(), self._datum_key(file.datum_id))
        return record

    def _datum_key(self, datum_id: str) -> str:
        return f"{self._folder('datums', check_name(datum_id, 'datum id'))}.json"

    def set_alias(self, name: str, file: DatumFile, producer: Producer) -> AliasEvent:
        """Create datum alias `name` or move it to `file` (the earlier targets stay in its history)."""
        check_name(name, "datum alias")
        self.add_datum(file, producer)
        return self._append(
            self._folder("aliases", name),
            lambda seq: AliasEvent(name=name, seq=seq, file=file, producer=producer),
        )

    def create_dataset_version(
        self,
        dataset: str,
        version: str,
        files: Sequence[DatumFile],
        producer: Producer,
        *,
        base: str | None = None,
        exclude: Sequence[str] = (),
        targeting_aliases: Sequence[str] = (),
    ) -> DatasetVersion:
        """A new, immutable version: the files of `base` (a version or alias of the same or another
        dataset) except `exclude` and the names `files` replace, then `files`. VersionExistsError if
        it exists; `latest` is reserved."""
        check_name(dataset, "dataset")
        check_name(version, "dataset version")
        if version == LATEST:
            raise CatalogueError(
                f"dataset://{dataset}/{LATEST}: '{LATEST}' is not a version name, it means the newest"
            )
        for alias in targeting_aliases:
            check_name(alias, "dataset alias")
            if alias == LATEST:
                raise CatalogueError(f"dataset://{dataset}: '{LATEST}' cannot be a dataset alias")
        combined: dict[str, DatumFile] = {}
        based_on = None
        if base:
            base_version = self.dataset_version(base)
            based_on = base_version.reference
            skip = set(exclude)
            combined = {f.name: f for f in base_version.files if f.name not in skip}
        combined.update({f.name: f for f in files})
        if not combined:
            raise CatalogueError(f"dataset://{dataset}/{version} would have no files")
        record = DatasetVersion(
            dataset=dataset,
            version=version,
            files=list(combined.values()),
            based_on=based_on,
            excluded=list(exclude),
            producer=producer,
        )
        key = self._version_key(dataset, version)
        existing = self._read_optional(key, DatasetVersion)
        if existing is not None:
            raise VersionExistsError(record.reference, existing)
        for file in files:
            self.add_datum(file, producer)
        try:
            self.store.create_bytes(record.model_dump_json().encode(), key)
        except ObjectExistsError:
            raise VersionExistsError(record.reference, self._read(key, DatasetVersion)) from None
        self._log_dataset(dataset, version, None, producer)
        for target in targeting_aliases:
            self._log_dataset(dataset, version, target, producer)
        return record

    def _log_dataset(self, dataset: str, version: str, alias: str | None, producer: Producer) -> DatasetEvent:
        return self._append(
            self._folder("datasets", dataset, "log"),
            lambda seq: DatasetEvent(
                dataset=dataset, seq=seq, version=version, alias=alias, producer=producer
            ),
        )

    def check_new_dataset_version(self, dataset: str, version: str) -> None:
        """VersionExistsError now, before anything is published, if the version exists already."""
        existing = self._read_optional(self._version_key(dataset, version), DatasetVersion)
        if existing is not None:
            raise VersionExistsError(existing.reference, existing)

    def create_model_version(
        self,
        model: str,
        files: Sequence[DatumFile],
        producer: Producer,
        *,
        tags: Sequence[str] = (),
        release_note: str | None = None,
    ) -> ModelVersion:
        """Model version N+1 (Valohai assigns the counter; a concurrent writer gets N+2)."""
        check_name(model, "model")
        if not files:
            raise CatalogueError(f"model://{model}/: a model version needs at least one file")
        for file in files:
            self.add_datum(file, producer)
        return self._append(
            self._folder("models", model),
            lambda number: ModelVersion(
                model=model,
                version=number,
                files=list(files),
                tags=list(tags),
                release_note=release_note,
                producer=producer,
            ),
        )

    # --- resolving ----------------------------------------------------------------------------

    def resolve(self, reference: str) -> list[DatumFile]:
        """The files a `datum://`, `dataset://` or `model://` reference names now."""
        return self.lookup(reference)[1]

    def lookup(self, reference: str) -> tuple[str, list[DatumFile]]:
        """The record a reference names now, by its own reference (`dataset://d/latest` →
        `dataset://d/v3`, `model://m/latest` → `model://m/2`; a datum reference as given), and its files."""
        scheme, _name, _version = split_reference(reference)
        if scheme == "datum":
            return reference, [self.datum(reference)]
        record: DatasetVersion | ModelVersion = (
            self.dataset_version(reference) if scheme == "dataset" else self.model_version(reference)
        )
        return record.reference, list(record.files)

    def datum(self, reference: str) -> DatumFile:
        """`datum://<alias>` (its newest target) or `datum://<datum id>`."""
        _scheme, name, _ = split_reference(reference)
        check_name(name, "datum alias")
        folder = self._folder("aliases", name)
        numbers = self._numbered(folder)
        if numbers:
            return self._read(f"{folder}/{_seq_key(numbers[-1])}", AliasEvent).file
        record = self._read_optional(self._datum_key(name), DatumRecord)
        if record is not None:
            return record.file
        raise UnknownReferenceError(
            f"{reference}: no datum alias or datum id {name!r} in the catalogue ({self.store.url}/{PREFIX})"
            + _suggest(name, self._names("aliases"))
        )

    def dataset_version(self, reference: str) -> DatasetVersion:
        """`dataset://<name>/<version>`, `…/<dataset alias>` or `…/latest`. Reads the version record
        directly, or the dataset's log newest first until the event that names it."""
        _scheme, dataset, version = split_reference(reference)
        check_name(dataset, "dataset")
        if version is None:
            raise CatalogueError(f"{reference!r}: name a version, or latest")
        if version != LATEST:
            record = self._read_optional(
                self._version_key(dataset, check_name(version, "dataset version")), DatasetVersion
            )
            if record is not None:
                return record
        wanted = None if version == LATEST else version  # latest: the newest "created" event
        found = self._newest_event(dataset, lambda e: e.alias == wanted)
        if found is not None:
            return self._read(self._version_key(dataset, found.version), DatasetVersion)
        events = self._dataset_events(dataset)
        if not events:
            raise self._unknown_dataset(reference, dataset)
        known = {e.version for e in events} | {e.alias for e in events if e.alias}
        raise UnknownReferenceError(
            f"{reference}: dataset {dataset!r} has no version or alias {version!r} "
            f"(it has {', '.join(sorted(known))}){_suggest(version, known)}"
        )

    def _version_key(self, dataset: str, version: str) -> str:
        return f"{self._folder('datasets', dataset, 'versions', version)}.json"

    def _newest_event(self, dataset: str, match: Callable[[DatasetEvent], bool]) -> DatasetEvent | None:
        log = self._folder("datasets", dataset, "log")
        for number in reversed(self._numbered(log)):
            event = self._read(f"{log}/{_seq_key(number)}", DatasetEvent)
            if match(event):
                return event
        return None

    def _unknown_dataset(self, reference: str, dataset: str) -> UnknownReferenceError:
        return UnknownReferenceError(
            f"{reference}: no dataset {dataset!r} in the catalogue ({self.store.url}/{PREFIX})"
            + _suggest(dataset, self._names("datasets"))
        )

    def _dataset_events(self, dataset: str) -> list[DatasetEvent]:
        log = self._folder("datasets", dataset, "log")
        return [self._read(f"{log}/{_seq_key(n)}", DatasetEvent) for n in self._numbered(log)]

    def model_version(self, reference: str) -> ModelVersion:
        """`model://<name>/<N>` (or `vN`) or `model://<name>/latest` (the highest version)."""
        _scheme, model, version = split_reference(reference)
        check_name(model, "model")
        folder = self._folder("models", model)
        numbers = self._numbered(folder)
        if not numbers:
            raise UnknownReferenceError(
                f"{reference}: no model {model!r} in the catalogue ({self.store.url}/{PREFIX})"
                + _suggest(model, self._names("models"))
            )
        if version in (None, LATEST):
            number = numbers[-1]
        else:
            match = _MODEL_VERSION.match(version)
            if match is None or int(match.group(1)) not in numbers:
                raise UnknownReferenceError(
                    f"{reference}: model {model!r} has versions {', '.join(map(str, numbers))} (and latest)"
                )
            number = int(match.group(1))
        return self._read(f"{folder}/{_seq_key(number)}", ModelVersion)

    # --- listing and history ------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every alias, dataset and model with its current target, sorted by kind and name."""
        return self.listing()[0]

    def listing(self, *, offset: int = 0, limit: int | None = None) -> tuple[list[Entry], int]:
        """A page of `entries()` and how many names there are: one listing per kind, then the newest
        record of the page's names only."""
        names = [(kind, name) for kind in _FOLDERS for name in sorted(self._names(_FOLDERS[kind]))]
        end = None if limit is None else offset + limit
        page = [e for kind, name in names[offset:end] if (e := self.entry(kind, name)) is not None]
        return page, len(names)

    def entry(self, kind: Kind, name: str) -> Entry | None:
        """One name's listing entry; None if it has no record (a dataset with only alias moves)."""
        if kind == "dataset":
            log = self._folder("datasets", name, "log")
            numbers = self._numbered(log)
            created = self._newest_event(name, lambda e: e.alias is None)
            if created is None:
                return None
            last = self._read(f"{log}/{_seq_key(numbers[-1])}", DatasetEvent)
            return Entry(
                kind=kind,
                name=name,
                current=created.version,
                events=len(numbers),
                updated_at=last.producer.at,
            )
        folder = self._folder(_FOLDERS[kind], name)
        numbers = self._numbered(folder)
        if not numbers:
            return None
        if kind == "alias":
            alias = self._read(f"{folder}/{_seq_key(numbers[-1])}", AliasEvent)
            current, at = alias.file.uri, alias.producer.at
        else:
            model = self._read(f"{folder}/{_seq_key(numbers[-1])}", ModelVersion)
            current, at = str(model.version), model.producer.at
        return Entry(kind=kind, name=name, current=current, events=len(numbers), updated_at=at)

    def recent(
        self, kind: Kind, name: str, *, offset: int = 0, limit: int | None = None
    ) -> tuple[list[AliasEvent | DatasetEvent | ModelVersion], int]:
        """A page of a name's events, newest first (an alias's moves, a dataset's log, a model's
        versions), and how many it has: one listing, then only the page's records are read."""
        model: type[AliasEvent | DatasetEvent | ModelVersion]
        if kind == "alias":
            folder, model = self._folder("aliases", check_name(name, "datum alias")), AliasEvent
        elif kind == "dataset":
            folder, model = self._folder("datasets", check_name(name, "dataset"), "log"), DatasetEvent
        else:
            folder, model = self._folder("models", check_name(name, "model")), ModelVersion
        numbers = self._numbered(folder)[::-1]
        end = None if limit is None else offset + limit
        return [self._read(f"{folder}/{_seq_key(n)}", model) for n in numbers[offset:end]], len(numbers)

    def datum_record(self, datum_id: str) -> DatumRecord | None:
        """A datum's record (its file and who made it); None if there is none by that id."""
        return self._read_optional(self._datum_key(datum_id), DatumRecord)

    def alias_history(self, name: str) -> list[AliasEvent]:
        folder = self._folder("aliases", check_name(name, "datum alias"))
        return [self._read(f"{folder}/{_seq_key(n)}", AliasEvent) for n in self._numbered(folder)]

    def dataset_history(self, dataset: str) -> list[DatasetEvent]:
        return self._dataset_events(check_name(dataset, "dataset"))

    def model_history(self, model: str) -> list[ModelVersion]:
        folder = self._folder("models", check_name(model, "model"))
        return [self._read(f"{folder}/{_seq_key(n)}", ModelVersion) for n in self._numbered(folder)]

    def history(self, name: str) -> list[AliasEvent | DatasetEvent | ModelVersion]:
        """A name's events, oldest first: `datum://x`, `dataset://x`, `model://x` or a bare name
        (whichever kinds hold it)."""
        scheme, sep, rest = name.partition("://")
        bare = rest.partition("/")[0] if sep else name
        kinds = [scheme] if sep else ["datum", "dataset", "model"]
        found: list[AliasEvent | DatasetEvent | ModelVersion] = []
        if "datum" in kinds:
            found += self.alias_history(bare)
        if "dataset" in kinds:
            found += self.dataset_history(bare)
        if "model" in kinds:
            found += self.model_history(bare)
        if not found:
            known = self._names("aliases") | self._names("datasets") | self._names("models")
            raise UnknownReferenceError(
                f"{name}: nothing in the catalogue by that name{_suggest(bare, known)}"
            )
        return found
