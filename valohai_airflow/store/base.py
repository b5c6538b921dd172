"""The one small interface every artefact store implements, and the errors it raises.

Keys are relative, `/`-separated paths inside a store's root (`run/node/0/1/outputs/a.csv`).
A prefix names a "directory": listing `a/b` lists keys under `a/b/`, never `a/bc`.
"""

from __future__ import annotations

import json
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from valohai_airflow import atomic
from valohai_airflow.errors import ValohaiAirflowError

#: read_json()/read_bytes() refuse anything bigger: they are for manifests, not datasets.
SMALL_OBJECT_LIMIT = 64 * 1024 * 1024


class StoreError(ValohaiAirflowError):
    """A store operation failed in a way the user can act on (bad URL, permissions, ...)."""


class ObjectNotFoundError(StoreError):
    """The key (or every key under a prefix) does not exist in the store."""

    def __init__(self, uri: str, detail: str = "") -> None:
        self.uri = uri
        super().__init__(f"not found in the artefact store: {uri}" + (f" ({detail})" if detail else ""))


class ObjectExistsError(StoreError):
    """`create_bytes` found the key taken: another writer created it first."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"already exists in the artefact store: {uri}")


class InvalidKeyError(StoreError):
    """A key that would escape the store root or is not a clean relative path."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    uri: str


def normalize_key(key: str, *, allow_empty: bool = False) -> str:
    """Reject keys that could escape the root (`..`, absolute, backslashes) and tidy slashes."""
    if "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"invalid store key {key!r}: backslashes and NUL are not allowed")
    if key.startswith("/"):
        raise InvalidKeyError(f"invalid store key {key!r}: keys are relative")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidKeyError(f"invalid store key {key!r}: '..' is not allowed")
    if not parts and not allow_empty:
        raise InvalidKeyError("empty store key")
    return "/".join(parts)


#: What a key segment must not hold literally, though a POSIX file name may: the escape itself,
#: backslash (refused by `normalize_key`), control characters (an S3 listing is XML, which cannot
#: carry most of them and turns a CR into LF), wildcard characters (an edge stages a file through its
#: URL, where `*?[` would be read as a pattern), and bytes that are not UTF-8 (os gives them to us as
#: lone surrogates; S3 keys and JSON are UTF-8).
_KEY_UNSAFE = re.compile(r"[%\\\x00-\x1f\x7f*?\[\]\ud800-\udfff]+")
#: LocalStore's temp files: a segment that starts so would be hidden from listings.
_HIDDEN_START = atomic.TEMP_PREFIX


def _escape(match: re.Match[str]) -> str:
    raw = match.group().encode("utf-8", "surrogateescape")
    return "".join(f"%{byte:02X}" for byte in raw)


def path_key(path: str) -> str:
    """The store key part for a `/`-separated file path: characters a store cannot hold (or that
    mean something else in a key or its URL) percent-encoded, reversibly (`key_path`). The
    manifest keeps the real path; only the key is encoded."""
    segments = []
    for segment in path.split("/"):
        encoded = _KEY_UNSAFE.sub(_escape, segment)
        if encoded.startswith(_HIDDEN_START):
            encoded = "%2E" + encoded[1:]
        segments.append(encoded)
    return "/".join(segments)


def key_path(key: str) -> str:
    """The file path `path_key` encoded (non-UTF-8 bytes come back as os's lone surrogates)."""
    return urllib.parse.unquote(key, errors="surrogateescape")


def join_key(prefix: str, *rest: str) -> str:
    return normalize_key(posixpath.join(prefix, *rest) if prefix else posixpath.join(*rest))


def tree_files(local_dir: Path) -> list[str]:
    """Relative POSIX paths of the regular files under `local_dir` (symlinks are not followed)."""
    out: list[str] = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        out.append(path.relative_to(local_dir).as_posix())
    return out


@runtime_checkable
class ArtifactStore(Protocol):
    """Where outputs, manifests and metadata series live between tasks. The stores subclass it for
    the methods written here once (JSON on top of bytes)."""

    @property
    def url(self) -> str:
        """The store root as a URL (`file:///...` or `s3://bucket/prefix`)."""
        ...

    def uri(self, key: str) -> str:
        """The URL of one key (does not check existence)."""
        ...

    @property
    def local_root(self) -> Path | None:
        """The folder holding the objects when they are files on this machine (the local store),
        else None: what may be served or read straight from disk."""
        ...

    def key_for_uri(self, uri: str) -> str | None:
        """The key a URL names if it lies inside this store, else None."""
        ...

    def put_file(self, local: Path, key: str) -> StoredObject:
        """Store one local file under `key`; readers see the old object or the whole new one."""
        ...

    def put_tree(
        self, local_dir: Path, prefix: str, files: Sequence[str] | None = None
    ) -> list[StoredObject]:
        """Store every file of a directory (or the given relative `files`) under `prefix`, each at
        `tree_key(prefix, path)` (any file name: what a key cannot hold is percent-encoded)."""
        ...

    def put_bytes(self, data: bytes, key: str) -> StoredObject: ...

    def put_json(self, obj: Any, key: str) -> StoredObject:
        return self.put_bytes(json.dumps(obj, sort_keys=True).encode(), key)

    def create_bytes(self, data: bytes, key: str) -> StoredObject:
        """Store `data` under `key` only if no object is there: of two writers racing for one key
        exactly one succeeds, the other gets ObjectExistsError (the catalogue's append step)."""
        ...

    def list_prefix(self, prefix: str = "") -> list[StoredObject]:
        """Every object under `prefix`, sorted by key."""
        ...

    def exists(self, key: str) -> bool: ...

    def get_file(self, key: str, dest: Path) -> Path:
        """Copy one object to `dest` (temp file, then rename); a missing key → ObjectNotFoundError."""
        ...

    def get_tree(self, prefix: str, dest_dir: Path) -> list[Path]:
        """Copy every object under `prefix` into `dest_dir`, keeping the relative layout."""
        ...

    def read_bytes(self, key: str, max_bytes: int = SMALL_OBJECT_LIMIT) -> bytes: ...

    def read_json(self, key: str, max_bytes: int = SMALL_OBJECT_LIMIT) -> Any:
        data = self.read_bytes(key, max_bytes)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoreError(f"{self.uri(key)} is not valid JSON: {exc}") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (or the single key `prefix`); returns how many."""
        ...


def relative_files(local_dir: Path, files: Iterable[str] | None) -> list[str]:
    """The relative paths `put_tree` stores (each checked not to leave `local_dir`)."""
    if files is None:
        return tree_files(local_dir)
    out = []
    for f in files:
        normalize_key(path_key(f))  # no '..', no leading '/'
        out.append("/".join(p for p in f.split("/") if p not in ("", ".")))
    return out


def tree_key(prefix: str, rel: str) -> str:
    """The key `put_tree` stores the file at relative path `rel` under."""
    return join_key(prefix, path_key(rel)) if prefix else normalize_key(path_key(rel))
