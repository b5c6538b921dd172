"""What a team already has, in the data catalogue: datum aliases, datums and dataset versions made
from files that exist (a team leaving Valohai keeps its files in its own bucket), listed, with history.
The Python face of `valohai-airflow data`; it does not need Airflow unless the store comes from its
`[valohai]` settings.

A URL is registered where it is, without copying:
- a local path (or `file://`): size and sha256 are computed now and checked whenever a node reads it;
- `s3://bucket/key`: its size is read (HeadObject, which also proves it exists); S3 keeps no sha256,
  so none is recorded, and a node reads whatever the object holds then;
- `http(s)://`: recorded as given, nothing fetched.
A local folder, or an `s3://…/` URL ending in `/`, stands for every file below it (named by its path
below it). `copy=True` copies each file into the store under `catalogue/files/<datum id>/` instead:
the catalogue then names an immutable copy with its sha256.

An alias move or a dataset version made here is also an Airflow Asset event (`announce`), as when a
node publishes it, so the DAGs scheduled on it start: through Airflow's REST API, found as
`valohai-airflow run` finds it (client.py: `AIRFLOW_URL` and a token or user). Without a configured
URL, or for an Asset no DAG declares (Airflow does not know it then), no event is sent and a line
says so; the catalogue change stands either way. `events=False` sends none.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valohai_airflow.asset_uris import Published, catalogue_events
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.runtime.inputs import DownloadCache, InputSource, materialise_input
from valohai_airflow.store import ArtifactStore
from valohai_airflow.store.base import StoreError, join_key, path_key
from valohai_airflow.store.catalogue import (
    AliasEvent,
    Catalogue,
    CatalogueError,
    DatasetEvent,
    DatasetVersion,
    DatumFile,
    DatumRecord,
    Entry,
    ModelVersion,
    Producer,
    check_name,
    registered_datum_id,
    split_reference,
)
from valohai_airflow.store.resolver import StoreResolver

if TYPE_CHECKING:
    from valohai_airflow.client import AirflowClient

__all__ = [
    "Catalogue",
    "CatalogueError",
    "add_datum",
    "announce",
    "create_dataset_version",
    "files_at",
    "history",
    "list_entries",
    "open_catalogue",
    "resolve_stores",
    "set_alias",
]

log = logging.getLogger(__name__)


def open_catalogue(
    store: str | Path | ArtifactStore | None = None, *, s3: Mapping[str, Any] | None = None
) -> Catalogue:
    """The catalogue of `store` (a path, `file://` or `s3://` URL, or a store), or of the artefact
    store Airflow's `[valohai]` settings name when None (S3 options from there too)."""
    return Catalogue(resolve_stores(store, s3).store)


def resolve_stores(
    store: str | Path | ArtifactStore | None, s3: Mapping[str, Any] | None = None
) -> StoreResolver:
    """The store a command line means: the one given, else the workers' (Airflow's `[valohai]`)."""
    if store is None:
        from valohai_airflow.airflow.settings import valohai_settings  # imports Airflow: only here

        return valohai_settings().stores
    return StoreResolver(store, s3=s3)


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _local_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_file():
        return [(path.name, path)]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        if found:
            return [(p.relative_to(path).as_posix(), p) for p in found]
        raise CatalogueError(f"{path}: the folder holds no files")
    raise CatalogueError(f"{path}: no such file or folder")


def files_at(url: str, stores: StoreResolver) -> list[DatumFile]:
    """The files a URL stands for, as datums registered where they are (see the module's doc)."""
    parsed = urllib.parse.urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("datum", "dataset", "model"):
        raise CatalogueError(f"{url}: give the file's own URL; catalogue references name files already")
    if scheme == "s3":
        bucket, key = parsed.netloc, urllib.parse.unquote(parsed.path).lstrip("/")
        s3 = stores.s3_bucket(bucket)
        if key.endswith("/") or not key:
            objects = s3.list_prefix(key.rstrip("/"))
            if not objects:
                raise CatalogueError(f"{url}: no objects below this prefix")
            strip = len(key.rstrip("/")) + 1 if key.rstrip("/") else 0
            return [_datum(o.key[strip:], o.uri, o.size, None) for o in objects]
        return [_datum(key.rpartition("/")[2], url, int(s3.head(key)["size"]), None)]
    if scheme in ("http", "https"):
        name = urllib.parse.unquote(parsed.path).rstrip("/").rpartition("/")[2]
        if not name:
            raise CatalogueError(f"{url}: the URL path has no file name")
        return [_datum(name, url, None, None)]
    if scheme == "file" or not scheme or len(scheme) == 1:
        path = Path(urllib.parse.unquote(parsed.path) if scheme == "file" else url).expanduser().absolute()
        return [_datum(name, p.as_uri(), p.stat().st_size, _sha256(p)) for name, p in _local_files(path)]
    raise CatalogueError(f"unsupported URL {url!r}: use a local path, file://, s3:// or http(s)://")


def _datum(
    name: str, uri: str, size: int | None, sha256: str | None, datum_id: str | None = None
) -> DatumFile:
    return DatumFile(
        datum_id=datum_id or registered_datum_id(uri, sha256), name=name, uri=uri, size=size, sha256=sha256
    )


def _copied(files: Sequence[DatumFile], catalogue: Catalogue, stores: StoreResolver) -> list[DatumFile]:
    """Each file copied into the store under `catalogue/files/<datum id>/<name>`, with its sha256."""
    out = []
    with tempfile.TemporaryDirectory(prefix="vh-catalogue-copy-") as tmp:
        cache = DownloadCache(Path(tmp) / "cache")
        for index, file in enumerate(files):
            got = materialise_input(
                str(index),
                [InputSource(file.uri, sha256=file.sha256)],
                Path(tmp) / "in",
                cache,
                stores=stores,
            ).files[0]
            local = Path(tmp) / "in" / str(index) / got.name
            datum_id = registered_datum_id(file.uri, got.sha256)
            stored = catalogue.store.put_file(
                local, join_key("catalogue/files", datum_id, path_key(file.name))
            )
            out.append(_datum(file.name, stored.uri, got.size, got.sha256, datum_id))
    return out


def _register(
    urls: Sequence[str], catalogue: Catalogue, stores: StoreResolver, *, copy: bool
) -> list[DatumFile]:
    try:
        files = [f for url in urls for f in files_at(url, stores)]
        return _copied(files, catalogue, stores) if copy else files
    except (OSError, StoreError) as error:
        raise CatalogueError(str(error)) from error


def set_alias(
    name: str,
    url: str,
    *,
    copy: bool = False,
    store: str | Path | ArtifactStore | None = None,
    s3: Mapping[str, Any] | None = None,
    events: bool = True,
) -> AliasEvent:
    """Point datum alias `name` at the file `url` (created, or moved: its earlier targets stay in history);
    `events`: emit its Asset event (`announce`, outcome in the log)."""
    stores = resolve_stores(store, s3)
    catalogue = Catalogue(stores.store)
    files = _register([url], catalogue, stores, copy=copy)
    if len(files) != 1:
        raise CatalogueError(f"{url}: an alias names one file, this URL stands for {len(files)}")
    moved = catalogue.set_alias(check_name(name, "datum alias"), files[0], Producer.manual())
    _announced([moved], events)
    return moved


def add_datum(
    url: str,
    *,
    datum_id: str | None = None,
    copy: bool = False,
    store: str | Path | ArtifactStore | None = None,
    s3: Mapping[str, Any] | None = None,
) -> DatumRecord:
    """Record one file as a datum, under `datum_id` when given (keep the ids a valohai.yaml names as
    `datum://<id>`), else under an id made from its URL and content."""
    stores = resolve_stores(store, s3)
    catalogue = Catalogue(stores.store)
    files = _register([url], catalogue, stores, copy=copy)
    if len(files) != 1:
        raise CatalogueError(f"{url}: a datum is one file, this URL stands for {len(files)}")
    file = (
        files[0]
        if datum_id is None
        else files[0].model_copy(update={"datum_id": check_name(datum_id, "datum id")})
    )
    return catalogue.add_datum(file, Producer.manual())


def create_dataset_version(
    reference: str,
    urls: Sequence[str],
    *,
    base: str | None = None,
    exclude: Sequence[str] = (),
    aliases: Sequence[str] = (),
    copy: bool = False,
    store: str | Path | ArtifactStore | None = None,
    s3: Mapping[str, Any] | None = None,
    events: bool = True,
) -> DatasetVersion:
    """Create `name/version` (or `dataset://name/version`) from the files at `urls`, optionally on top
    of `base` (`dataset://…/…`, minus `exclude`), pointing the dataset aliases `aliases` at it;
    `events`: emit its Asset event (`announce`, outcome in the log)."""
    scheme, dataset, version = split_reference(reference if "://" in reference else f"dataset://{reference}")
    if scheme != "dataset" or version is None:
        raise CatalogueError(f"{reference!r}: expected NAME/VERSION or dataset://NAME/VERSION")
    stores = resolve_stores(store, s3)
    catalogue = Catalogue(stores.store)
    catalogue.check_new_dataset_version(dataset, version)  # before any copying
    files = _register(urls, catalogue, stores, copy=copy)
    created = catalogue.create_dataset_version(
        dataset, version, files, Producer.manual(), base=base, exclude=exclude, targeting_aliases=aliases
    )
    _announced([created], events)
    return created


def list_entries(
    store: str | Path | ArtifactStore | None = None, *, s3: Mapping[str, Any] | None = None
) -> list[Entry]:
    """Every alias, dataset and model with its current target."""
    return open_catalogue(store, s3=s3).entries()


def history(
    name: str, store: str | Path | ArtifactStore | None = None, *, s3: Mapping[str, Any] | None = None
) -> list[AliasEvent | DatasetEvent | ModelVersion]:
    """The events of an alias, dataset or model (`datum://x`, `dataset://x`, `model://x` or a bare name)."""
    return open_catalogue(store, s3=s3).history(name)


def announce(published: Sequence[Published], client: AirflowClient | None = None) -> list[str]:
    """Emit the Asset events of catalogue changes made outside any task through Airflow's REST API
    (`client`: an `AirflowClient`, else one from the usual settings); one line per event saying what
    happened, or one line saying why none was sent. Never raises: the changes stand without events."""
    from valohai_airflow.client import AirflowClient, ClientSettings  # httpx: only when emitting

    events = catalogue_events(published)
    if not events:
        return []
    own = client is None
    try:
        if client is None:
            client = AirflowClient(ClientSettings.load())
    except ValohaiAirflowError as error:
        return [f"no Asset events sent: {error}"]
    lines = []
    try:
        for event in events:
            try:
                sent = client.emit_asset_event(event.uri, event.extra)
            except ValohaiAirflowError as error:
                lines.append(f"Asset event {event.uri} not sent: {error}")
                continue
            if sent is None:
                lines.append(
                    f"no Asset event for {event.uri}: no DAG in Airflow is scheduled on it or declares it"
                )
            else:
                lines.append(f"Asset event {event.uri} ({event.extra['reference']}) sent to Airflow")
    finally:
        if own:
            client.close()
    return lines


def _announced(published: Sequence[Published], events: bool) -> None:
    for line in announce(published) if events else []:
        log.info(line)
