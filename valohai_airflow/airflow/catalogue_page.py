"""The data catalogue's pages on the plugin's app (/valohai/catalogue, a "Data catalogue" item in
the UI's navigation): every datum alias, dataset and model; an alias's history; a dataset's
versions and alias moves; a version's or model version's files with size and sha256; each record
linked to the node try that produced it (its Outputs page) or marked as registered by a person
(`valohai-airflow data`).

Read through `valohai_airflow.data.open_catalogue` (the store the `[valohai]` settings name), in
bounded pages: PAGE_SIZE names, EVENTS_PER_PAGE events, FILES_PER_PAGE files per page, each page
reading only its own records. The catalogue spans DAGs, and its records are Airflow Assets (every
change is an Asset event), so the pages answer a user who may read Assets (Airflow's asset access
entity); the producing node's page still asks for read access to that DAG.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from airflow.api_fastapi.core_api.security import requires_access_asset
from fastapi import Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from valohai_airflow.airflow.links import catalogue_path, node_page_path, ui_path
from valohai_airflow.airflow.web import PAGE_HEADERS, TEMPLATES, app
from valohai_airflow.data import open_catalogue
from valohai_airflow.store import StoreError
from valohai_airflow.store.catalogue import (
    AliasEvent,
    Catalogue,
    CatalogueError,
    DatasetEvent,
    DatasetVersion,
    DatumFile,
    ModelVersion,
    Producer,
    UnknownReferenceError,
)

PAGE_SIZE = 50
EVENTS_PER_PAGE = 20
FILES_PER_PAGE = 200
ASSETS_READABLE = [Depends(requires_access_asset(method="GET"))]
Page = Annotated[int, Query(ge=0)]
_T = TypeVar("_T")


def _catalogue() -> Catalogue:
    try:
        return open_catalogue()
    except StoreError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"artefact store: {error}") from error


def _read(what: Callable[[], _T]) -> _T:
    """A catalogue read as an HTTP answer: 404 for what it lacks (with its did-you-mean), 400 for a
    name it refuses, 502 for a store that fails."""
    try:
        return what()
    except UnknownReferenceError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except CatalogueError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from error
    except StoreError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, f"artefact store: {error}") from error


def producer_view(producer: Producer) -> dict[str, str]:
    """Who made a record, for the pages: the node try's Outputs page and its DAG run, or the person."""
    if producer.kind == "manual" or not (producer.dag_id and producer.run_id and producer.node):
        return {"text": f"registered by {producer.describe()}", "node_page": "", "run_page": ""}
    map_index = producer.map_index if producer.map_index is not None else -1
    node = producer.node + (f" [{map_index}]" if map_index >= 0 else "")
    quoted = [urllib.parse.quote(p, safe="") for p in (producer.dag_id, producer.run_id)]
    return {
        "text": f"{node} (try {producer.try_number or 1}) in run {producer.run_id} of {producer.dag_id}",
        "node_page": ui_path(
            node_page_path(
                producer.dag_id, producer.run_id, producer.node, map_index, producer.try_number or 1
            )
        ),
        "run_page": ui_path(f"/dags/{quoted[0]}/runs/{quoted[1]}"),
    }


def _render(
    template: str, title: str, page: int, shown: int, total: int, per_page: int, **values: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        title=title,
        home=ui_path(catalogue_path()),
        link=lambda reference: ui_path(catalogue_path(reference)),
        producer=producer_view,
        page=page,
        first=page * per_page + 1,
        last=page * per_page + shown,
        per_page=per_page,
        total=total,
        newer=f"?page={page - 1}" if page > 0 else "",
        older=f"?page={page + 1}" if (page + 1) * per_page < total else "",
        **values,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


def _files_page(files: Sequence[DatumFile], page: int) -> list[DatumFile]:
    return list(files[page * FILES_PER_PAGE : (page + 1) * FILES_PER_PAGE])


@app.get("/catalogue", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def catalogue_page(page: Page = 0) -> HTMLResponse:
    catalogue = _catalogue()
    entries, total = _read(lambda: catalogue.listing(offset=page * PAGE_SIZE, limit=PAGE_SIZE))
    return _render(
        "catalogue_index.html",
        "Data catalogue",
        page,
        len(entries),
        total,
        PAGE_SIZE,
        entries=entries,
        store=catalogue.store.url,
    )


@app.get("/catalogue/datums/{name}", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def datum_page(name: str, page: Page = 0) -> HTMLResponse:
    """`datum://<name>`: an alias's moves (newest first), or the datum with that id."""
    catalogue = _catalogue()
    events, total = _read(
        lambda: catalogue.recent("alias", name, offset=page * EVENTS_PER_PAGE, limit=EVENTS_PER_PAGE)
    )
    record = None if total else _read(lambda: catalogue.datum_record(name))
    if not total and record is None:
        _read(lambda: catalogue.datum(f"datum://{name}"))  # raises: no such alias or id, did you mean
    return _render(
        "catalogue_datum.html",
        f"datum://{name}",
        page,
        len(events),
        total,
        EVENTS_PER_PAGE,
        name=name,
        moves=[e for e in events if isinstance(e, AliasEvent)],
        record=record,
    )


@app.get("/catalogue/datasets/{name}", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def dataset_page(name: str, page: Page = 0) -> HTMLResponse:
    """A dataset's log, newest first: versions created (with their file count and size) and its
    dataset aliases moved."""
    catalogue = _catalogue()
    events, total = _read(
        lambda: catalogue.recent("dataset", name, offset=page * EVENTS_PER_PAGE, limit=EVENTS_PER_PAGE)
    )
    if not total:
        _read(lambda: catalogue.dataset_version(f"dataset://{name}/latest"))  # raises: did you mean
    log = [e for e in events if isinstance(e, DatasetEvent)]
    created = [e.version for e in log if e.alias is None]
    versions = _read(lambda: {v: catalogue.dataset_version(f"dataset://{name}/{v}") for v in created})
    return _render(
        "catalogue_dataset.html",
        f"dataset://{name}",
        page,
        len(log),
        total,
        EVENTS_PER_PAGE,
        name=name,
        log=log,
        versions=versions,
    )


@app.get("/catalogue/datasets/{name}/{version}", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def dataset_version_page(name: str, version: str, page: Page = 0) -> HTMLResponse:
    """A dataset version's files (`latest` and dataset aliases resolve to the version they name)."""
    record = _read(lambda: _catalogue().dataset_version(f"dataset://{name}/{version}"))
    return _version_files(record, f"dataset://{name}/{version}", f"dataset://{name}", page)


@app.get("/catalogue/models/{name}", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def model_page(name: str, page: Page = 0) -> HTMLResponse:
    """A model's versions, newest first."""
    catalogue = _catalogue()
    versions, total = _read(
        lambda: catalogue.recent("model", name, offset=page * EVENTS_PER_PAGE, limit=EVENTS_PER_PAGE)
    )
    if not total:
        _read(lambda: catalogue.model_version(f"model://{name}/latest"))  # raises: did you mean
    return _render(
        "catalogue_model.html",
        f"model://{name}",
        page,
        len(versions),
        total,
        EVENTS_PER_PAGE,
        name=name,
        versions=[v for v in versions if isinstance(v, ModelVersion)],
    )


@app.get("/catalogue/models/{name}/{version}", response_class=HTMLResponse, dependencies=ASSETS_READABLE)
def model_version_page(name: str, version: str, page: Page = 0) -> HTMLResponse:
    """A model version's files (`latest`: the highest version)."""
    record = _read(lambda: _catalogue().model_version(f"model://{name}/{version}"))
    return _version_files(record, f"model://{name}/{version}", f"model://{name}", page)


def _version_files(record: DatasetVersion | ModelVersion, asked: str, parent: str, page: int) -> HTMLResponse:
    """One page of a version's files; `asked`: the reference as given (`latest` resolved)."""
    files = _files_page(record.files, page)
    return _render(
        "catalogue_files.html",
        record.reference,
        page,
        len(files),
        len(record.files),
        FILES_PER_PAGE,
        record=record,
        asked=asked,
        parent=ui_path(catalogue_path(parent)),
        files=files,
    )
