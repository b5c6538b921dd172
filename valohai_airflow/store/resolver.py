"""One place that opens stores: the configured artefact store, and any other store URL (an upstream's
file list, a bundle file, an `s3://` input) with the configured credentials.

Built once from the `[valohai]` settings by the airflow layer and handed to the runtime, so request
types carry it instead of the store URL and S3 options side by side. S3 options reach S3 URLs only:
a local or `file://` store takes none.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valohai_airflow.store import ArtifactStore, StoreError, open_store

if TYPE_CHECKING:
    from valohai_airflow.store.s3 import S3Store


class StoreResolver:
    """Opens stores by URL with one set of S3 options; `store` is the configured one (opened on first
    use), None for a resolver that only opens URLs."""

    def __init__(
        self, store: ArtifactStore | str | Path | None = None, *, s3: Mapping[str, Any] | None = None
    ):
        self._configured = store
        self.s3_options: Mapping[str, Any] = dict(s3 or {})

    def __repr__(self) -> str:
        return f"StoreResolver({self._configured!r})"

    @functools.cached_property
    def store(self) -> ArtifactStore:
        """The configured artefact store."""
        if self._configured is None:
            raise StoreError("no artefact store configured")
        if isinstance(self._configured, str | Path):
            return self.open(self._configured)
        return self._configured

    def open(self, url: str | Path) -> ArtifactStore:
        """A store rooted at `url` (a path, `file://` or `s3://`), with the S3 options for S3."""
        is_s3 = urllib.parse.urlparse(str(url)).scheme == "s3"
        return open_store(url, **(self.s3_options if is_s3 else {}))

    def s3_bucket(self, bucket: str) -> S3Store:
        """A whole bucket (an `s3://` input's), with the S3 options."""
        from valohai_airflow.store.s3 import S3Store

        return S3Store(bucket, "", **self.s3_options)

    def locate(self, uri: str) -> tuple[ArtifactStore, str]:
        """The store and key of an object URL: the configured store when the URL lies inside it,
        otherwise a store opened on the URL's parent."""
        if self._configured is not None:
            key = self.store.key_for_uri(uri)
            if key is not None:
                return self.store, key
        parent, _, name = uri.rstrip("/").rpartition("/")
        if not name or not parent:
            raise StoreError(f"not an object URL: {uri!r}")
        return self.open(parent), urllib.parse.unquote(name)

    def read_json(self, uri: str) -> Any:
        """A small JSON object by URL."""
        store, key = self.locate(uri)
        return store.read_json(key)

    def get_file(self, uri: str, dest: Path) -> Path:
        """Copy an object by URL to `dest`."""
        store, key = self.locate(uri)
        return store.get_file(key, dest)
