"""Artefact stores: where node outputs, manifests and metadata series are kept between tasks."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

from valohai_airflow.store.base import (
    ArtifactStore,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    StoredObject,
    StoreError,
)
from valohai_airflow.store.local import LocalStore


def open_store(url: str | Path, **opts: Any) -> ArtifactStore:
    """A store for `url`: a plain path or `file://` → LocalStore, `s3://bucket/prefix` → S3Store.

    `opts` go to the store's constructor (for S3: endpoint_url, access_key, secret_key,
    region_name, multipart_threshold, max_concurrency, ...).
    """
    text = str(url)
    if not text:
        raise StoreError("no artefact store URL given")
    parsed = urllib.parse.urlparse(text)
    if parsed.scheme == "s3":
        from valohai_airflow.store.s3 import S3Store

        return S3Store.from_url(text, **opts)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(f"file URL with a host is not supported: {text!r}")
        return LocalStore(urllib.parse.unquote(parsed.path), **opts)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StoreError(f"unsupported artefact store URL {text!r}: use a local path, file:// or s3://")
    return LocalStore(text, **opts)


__all__ = [
    "ArtifactStore",
    "InvalidKeyError",
    "LocalStore",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "StoreError",
    "StoredObject",
    "open_store",
]
