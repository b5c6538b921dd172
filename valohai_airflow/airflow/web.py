"""The provider's pages on the Airflow API server (mounted at /valohai by the plugin): one node try's
output files (size, sha256, each downloadable) and metadata (last values and the series), read from
the configured artefact store, local or S3.

Same-origin with the Airflow UI, so its extra links render and the UI's login reaches them: every
route asks Airflow's own core-API dependencies for a user (the `_token` cookie the UI sets, or a
bearer token) with read access to the DAG's XComs. Files come only from a try's manifest: its XCom, or
for a failed try the manifest its finished stage-out stored; a try without one (its stage-out failed,
was killed, or has not finished) lists no outputs, whatever partial objects its prefix may hold.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import tempfile
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from starlette.background import BackgroundTask

from valohai_airflow.airflow.links import URL_PREFIX, catalogue_path, node_page_path, ui_path
from valohai_airflow.airflow.settings import valohai_settings
from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.manifest import Manifest, ManifestFile, load_manifest, stored_manifest
from valohai_airflow.runtime.metadata import TIME_KEY
from valohai_airflow.sizes import size_text
from valohai_airflow.store import ArtifactStore, ObjectNotFoundError, StoreError
from valohai_airflow.store.base import join_key

MAX_SERIES_ROWS = 500
#: Pages show user content on Airflow's origin: no scripts, no sniffing; files are sandboxed too
#: (an output .html opened here must not act as the logged-in user).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
FILE_HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox"}
NODE = "/nodes/{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}"
READABLE = [Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM))]

app = FastAPI(
    title="valohai-airflow",
    description="Outputs and metadata of Valohai pipeline nodes, from the artefact store.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


class NodeTry:
    """One try of one node: its manifest (the XCom when it belongs to this try, else the one its
    stage-out stored), and the store."""

    def __init__(
        self, session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
    ) -> None:
        settings = valohai_settings()
        self.key = ExecutionKey(dag_id, run_id, task_id, map_index, try_number)
        self.stores = settings.stores
        try:
            self.store: ArtifactStore = self.stores.store
        except StoreError as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"artefact store: {error}") from error
        self.manifest = self._manifest(session)

    def _manifest(self, session: Any) -> Manifest | None:
        manifest = self._xcom_manifest(session)
        if manifest is None:
            try:
                value = stored_manifest(self.store, self.key)
                manifest = Manifest.model_validate(value) if value is not None else None
            except (StoreError, ValueError):
                return None
        if manifest is None:
            return None
        try:
            return load_manifest(manifest, self.stores)
        except StoreError as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"the node's file list: {error}") from error

    def _xcom_manifest(self, session: Any) -> Manifest | None:
        from airflow.models.xcom import XComModel

        query = XComModel.get_many(
            run_id=self.key.run_id,
            key="return_value",
            task_ids=self.key.node,
            dag_ids=self.key.dag_id,
            map_indexes=self.key.map_index,
            limit=1,
        )
        row = session.scalars(query).first()
        manifest = xcom_manifest(row.value if row is not None else None)
        if manifest is None:
            return None
        if manifest.execution_id != self.key.execution_id and not manifest.reused_from:
            return None  # the XCom of another try
        return manifest

    def outputs(self) -> list[ManifestFile]:
        return list(self.manifest.outputs) if self.manifest is not None else []

    def metadata_key(self) -> str | None:
        uri = self.manifest.metadata_uri if self.manifest else None
        if uri:
            return self.store.key_for_uri(uri)
        key = join_key(self.key.prefix, "metadata.jsonl")
        return key if self.store.exists(key) else None

    def series(self) -> list[dict[str, Any]]:
        key = self.metadata_key()
        if key is None:
            return []
        try:
            text = self.store.read_bytes(key).decode("utf-8", "replace")
        except StoreError:
            return []
        points = []
        for line in text.splitlines():
            try:
                point = json.loads(line)
            except ValueError:
                continue
            if isinstance(point, dict):
                points.append(point)
        return points

    def last_values(self, series: list[dict[str, Any]]) -> dict[str, Any]:
        if self.manifest is not None:
            return dict(self.manifest.metadata)
        last: dict[str, Any] = {}
        for point in series:
            last.update({k: v for k, v in point.items() if k != TIME_KEY})
        return last


def xcom_manifest(value: Any) -> Manifest | None:
    """A node's return-value XCom as its manifest; None for anything else (another operator's value)."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or "execution_id" not in value:
        return None
    try:
        return Manifest.model_validate(value)
    except ValueError:
        return None


def _clean_path(path: str) -> str:
    """An output path as the manifest writes it (any file name, a backslash too); a path that could
    not be an output's is refused."""
    parts = path.split("/")
    if not path or path.startswith("/") or "\x00" in path or ".." in parts:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"refused output path {path!r}: paths are relative to the node's outputs and may not "
            "contain '..' or a leading '/'",
        )
    return "/".join(p for p in parts if p not in ("", "."))


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


#: The page's HTML (templates/node_page.html); user content reaches it only as escaped variables.
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("valohai_airflow.airflow", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(
    size=lambda size: size_text(size) if size is not None else "",
    value=_value,
    urlquote=urllib.parse.quote,
    catalogue=lambda reference: ui_path(catalogue_path(reference)),
)


def _page(t: NodeTry) -> str:
    key = t.key
    m = t.manifest
    series = t.series()
    columns: list[str] = []
    for point in series:
        columns += [k for k in point if k != TIME_KEY and k not in columns]
    reused = m.reused_from if m else None
    return TEMPLATES.get_template("node_page.html").render(
        key=key,
        m=m,
        title=m.node if m else key.node,
        base=ui_path(node_page_path(key.dag_id, key.run_id, key.node, key.map_index, key.try_number)),
        task_page=ui_path(
            f"/dags/{urllib.parse.quote(key.dag_id, safe='')}/runs/{urllib.parse.quote(key.run_id, safe='')}"
            f"/tasks/{urllib.parse.quote(key.node, safe='')}"
            + (f"/mapped/{key.map_index}" if key.map_index >= 0 else "")
        ),
        reused_run_page=ui_path(
            f"/dags/{urllib.parse.quote(reused.get('dag_id', ''), safe='')}"
            f"/runs/{urllib.parse.quote(reused.get('run_id', ''), safe='')}"
        )
        if reused
        else "",
        outputs=t.outputs(),
        last=t.last_values(series),
        series=series,
        shown=series[:MAX_SERIES_ROWS],
        columns=columns,
        time_key=TIME_KEY,
    )


@app.get(NODE, response_class=HTMLResponse, dependencies=READABLE)
def node_page(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, session: SessionDep
) -> HTMLResponse:
    t = NodeTry(session, dag_id, run_id, task_id, map_index, try_number)
    if t.manifest is None and t.metadata_key() is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"nothing stored for try {try_number} of {task_id} in run {run_id} of {dag_id} "
            f"(looked for its XCom manifest and under {t.store.uri(t.key.prefix)})",
        )
    return HTMLResponse(_page(t), headers=PAGE_HEADERS)


@app.get(NODE + "/metadata.jsonl", dependencies=READABLE)
def metadata_file(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, session: SessionDep
) -> Response:
    t = NodeTry(session, dag_id, run_id, task_id, map_index, try_number)
    key = t.metadata_key()
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no metadata.jsonl stored for try {try_number}")
    return _serve(t.store, key, "text/plain; charset=utf-8", attachment=False)


@app.get(NODE + "/outputs/{path:path}", dependencies=READABLE)
def output_file(
    dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, path: str, session: SessionDep
) -> Response:
    path = _clean_path(path)
    t = NodeTry(session, dag_id, run_id, task_id, map_index, try_number)
    entry = next((f for f in t.outputs() if f.path == path), None)
    key = t.store.key_for_uri(entry.uri) if entry and entry.uri else None
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{path!r} is not an output of {task_id} in the store")
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return _serve(t.store, key, media_type, attachment=True, name=PurePosixPath(path).name)


def _serve(store: ArtifactStore, key: str, media_type: str, *, attachment: bool, name: str = "") -> Response:
    """A stored object as a file response: straight from disk for the local store (never through a
    symlink out of it), through a temporary copy for S3. `name`: the file's real name (a key may
    percent-encode it)."""
    name = name or PurePosixPath(key).name
    disposition = "attachment" if attachment else "inline"
    if store.local_root is not None:
        root = store.local_root.resolve()
        local = (root / key).resolve()
        if not local.is_relative_to(root) or not local.is_file():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not in the artefact store: {key}")
        return FileResponse(
            local,
            media_type=media_type,
            filename=name,
            content_disposition_type=disposition,
            headers=FILE_HEADERS,
        )
    folder = Path(tempfile.mkdtemp(prefix="valohai-airflow-download-"))
    try:
        copy = store.get_file(key, folder / "object")
    except ObjectNotFoundError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    except StoreError as error:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from error
    return FileResponse(
        copy,
        media_type=media_type,
        filename=name,
        content_disposition_type=disposition,
        headers=FILE_HEADERS,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


__all__ = ["URL_PREFIX", "app"]
