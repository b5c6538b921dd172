"""Materialise input files into `inputs/<name>/` (VALOHAI.md §2.3, DESIGN.md §4 step 3).

Sources: local paths, `file://`, `s3://` (through the S3 store; wildcards allowed) and
`http(s)://`. Remote files go through ONE download cache keyed by URL, reused only while the
source's validator (ETag / Last-Modified / size) is unchanged and the cached bytes still hash to
the recorded sha256; concurrent tasks coordinate with a file lock per URL and atomic renames.
`datum://`, `dataset://` and `model://` references are resolved through the data catalogue
before they get here (`runtime.catalogue`); one reaching `materialise_input` is refused.

Integrity: a local file (an upstream output in the local store, a cached download) whose seal
(`store.files`: the sha256 recorded on the file with the size and mtime it had) is still valid
is copied by the kernel (a reflink where the filesystem has them) and its sealed sha256 checked
instead of reading it again; without a valid seal the copy is hashed, and a sha256 other than
the expected one fails the input, as it always did.

Wildcards use the output-edge glob rules (`runtime.globs`): `*` within one path level, `**`
across levels. Where files land (`keep-directories`):
- `none` (default): flat, `inputs/<name>/<basename>`;
- `full`: the whole source path (`s3://b/a/b/c.csv` → `a/b/c.csv`, bucket/host excluded);
- `suffix`: the path below the wildcard's fixed prefix (`s3://b/a/*/c.csv` → `x/c.csv`).
`filename` renames a single file and is an error for several. Two files landing on one name:
the later one wins and a warning says so.

Confinement (`runtime.confinement`): every destination must resolve inside the input's folder, and
sources given by a run conf or a default are checked against the `InputPolicy` (local roots, public
addresses) before they are read; upstream outputs (edges) are ours and are not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from valohai_airflow import atomic
from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.runtime.config_files import InputFileEntry
from valohai_airflow.runtime.confinement import Destinations, InputPolicy, confined
from valohai_airflow.runtime.globs import compile_glob, has_wildcards
from valohai_airflow.spec.paths import escape_problem
from valohai_airflow.store.base import StoreError
from valohai_airflow.store.files import clone_or_copy, copy_hashed, hash_fd, seal_written, sealed_sha256
from valohai_airflow.store.resolver import StoreResolver

KeepDirectories = Literal["none", "full", "suffix"]
HTTP_TIMEOUT = 60.0
_Opener = Callable[..., Any]  # urllib's urlopen, or a policy opener's open


class InputError(ValohaiAirflowError):
    """An input that cannot be materialised (bad URL, missing file, checksum mismatch, ...)."""


@dataclass(frozen=True, slots=True)
class InputSource:
    """One URL or path given for an input (a default, run conf, or an upstream output).

    `sha256`/`size` are known for upstream outputs and checked; `metadata` becomes the file's
    `inputs.json` metadata; `path_hint` (e.g. the output's path below /valohai/outputs) is the
    relative path used by keep-directories instead of the URL's path; `datum_id` names a file
    from the data catalogue (inputs.json carries it) and `catalogue` the references it was read by
    (the manifest's lineage)."""

    uri: str
    sha256: str | None = None
    size: int | None = None
    metadata: tuple[dict[str, Any], ...] = ()
    path_hint: str | None = None
    datum_id: str | None = None
    catalogue: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Resolved:
    uri: str
    full: str  # path for keep-directories: full
    suffix: str  # path for keep-directories: suffix
    fetch: Callable[[DownloadCache, Path, str | None], str]  # (cache, dest, expected sha256) → sha256


@dataclass
class MaterialisedInput:
    name: str
    files: list[InputFileEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- the download cache -------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _copy_atomic(src: Path, dest: Path) -> str:
    """Copy `src` to `dest` (a temp name beside it, then a rename; by the kernel, a reflink where
    the filesystem has them) and return the sha256 of what `dest` holds: the sealed one when `src`
    has a valid seal before and after the copy, otherwise the copy's own, hashed."""
    with atomic.replacing(dest) as tmp, open(src, "rb") as fh, open(tmp, "r+b") as out:
        digest = sealed_sha256(fh.fileno())
        if digest is None:
            digest = copy_hashed(fh.fileno(), out.fileno())[1]
        else:
            clone_or_copy(fh.fileno(), out.fileno())
            if sealed_sha256(fh.fileno()) != digest:  # changed while being copied
                digest = hash_fd(out.fileno())[1]
    return digest


class DownloadCache:
    """Remote files by URL under `root/<sha256(url)>/{blob,meta.json}`, shared by all tasks."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.downloads = 0  # how many times this instance actually fetched (for logs and tests)

    def _entry(self, url: str) -> Path:
        return self.root / hashlib.sha256(url.encode()).hexdigest()

    def fetch(
        self,
        url: str,
        validator: Mapping[str, Any] | None,
        fill: Callable[[Path], str | None],
        dest: Path,
        expected_sha256: str | None = None,
    ) -> str:
        """Copy the cached (or freshly fetched) bytes of `url` to `dest`; returns their sha256.

        `validator` describes the current remote version; None or empty means "cannot tell",
        which always re-fetches. `fill(path)` downloads the URL to `path` and returns the sha256
        of the bytes it wrote when it hashed them on the way (else None: the file is hashed)."""
        entry = self._entry(url)
        blob, meta_path = entry / "blob", entry / "meta.json"
        usable = dict(validator) if validator and any(validator.values()) else None
        with _locked(entry.with_suffix(".lock")):
            meta = self._read_meta(meta_path)
            if (
                usable is not None
                and meta.get("url") == url
                and meta.get("validator") == usable
                and blob.is_file()
                and (expected_sha256 is None or expected_sha256 == meta.get("sha256"))
            ):
                if _copy_atomic(blob, dest) == meta.get("sha256"):  # the cached bytes are still those
                    return str(meta["sha256"])
                dest.unlink()
            digest = self._download(url, usable, fill, entry, expected_sha256)
            if _copy_atomic(blob, dest) != digest:
                dest.unlink()
                raise InputError(f"the cached copy of {url} changed while it was being copied; try again")
        return digest

    @staticmethod
    def _read_meta(path: Path) -> dict[str, Any]:
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _download(
        self,
        url: str,
        validator: dict[str, Any] | None,
        fill: Callable[[Path], str | None],
        entry: Path,
        expected_sha256: str | None,
    ) -> str:
        with atomic.replacing(entry / "blob") as tmp:
            hashed = fill(tmp)
            self.downloads += 1
            with open(tmp, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                digest = hashed or hash_fd(fh.fileno())[1]
                if expected_sha256 is not None and digest != expected_sha256:
                    raise InputError(
                        f"checksum mismatch for {url}: expected sha256 {expected_sha256}, got {digest}"
                    )
                seal_written(fh.fileno(), digest)  # cache hits copy it without reading it again
        meta = {"url": url, "validator": validator, "sha256": digest, "size": size}
        atomic.write_bytes(entry / "meta.json", json.dumps(meta).encode())
        return digest


# --- resolving URLs to files ----------------------------------------------------------------------


def _split_wildcard(path: str) -> tuple[str, str | None]:
    """`a/b/*/c.csv` → (`a/b`, `*/c.csv`); no wildcard → (path, None)."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if has_wildcards(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return path, None


def _local_fetch(src: Path) -> Callable[[DownloadCache, Path, str | None], str]:
    def fetch(_cache: DownloadCache, dest: Path, expected: str | None) -> str:
        digest = _copy_atomic(src, dest)
        if expected is not None and digest != expected:
            dest.unlink()
            raise InputError(f"checksum mismatch for {src}: expected sha256 {expected}, got {digest}")
        return digest

    return fetch


def _resolve_local(text: str, uri: str, policy: InputPolicy | None) -> list[_Resolved]:
    path = Path(text).expanduser().absolute()
    static, pattern = _split_wildcard(path.as_posix())
    if policy is not None:  # before any existence test: a refusal tells nothing about the file
        policy.check_local(Path(static or "/") if pattern else path)
    if pattern is None:
        if path.is_file():
            if policy is not None:
                path = policy.check_local(path)  # the checked target, not a link swapped later
            return [_Resolved(uri, path.as_posix().lstrip("/"), path.name, _local_fetch(path))]
        if path.is_dir():  # a directory stands for every file below it
            static, pattern = path.as_posix(), "**"
        else:
            raise InputError(f"input file not found: {path}")
    base = Path(static or "/")
    glob = compile_glob(pattern)
    out = []
    for dirpath, _dirs, names in os.walk(base):
        for name in names:
            file = Path(dirpath) / name
            rel = file.relative_to(base).as_posix()
            if glob.matches(rel) and file.is_file():
                source = file if policy is None else policy.check_local(file)  # a symlink may lead out
                out.append(_Resolved(file.as_uri(), file.as_posix().lstrip("/"), rel, _local_fetch(source)))
    return sorted(out, key=lambda r: r.uri)


def _resolve_s3(uri: str, stores: StoreResolver) -> list[_Resolved]:
    parsed = urllib.parse.urlparse(uri)
    bucket, key = parsed.netloc, urllib.parse.unquote(parsed.path).lstrip("/")
    if not bucket or not key:
        raise InputError(f"S3 input URL needs a bucket and a key: {uri!r}")
    store = stores.s3_bucket(bucket)

    def fetcher(obj_key: str) -> Callable[[DownloadCache, Path, str | None], str]:
        def fetch(cache: DownloadCache, dest: Path, expected: str | None) -> str:
            try:
                head = store.head(obj_key)
                return cache.fetch(
                    f"s3://{bucket}/{obj_key}",
                    head,
                    lambda tmp: store.get_file_hashed(obj_key, tmp, head),
                    dest,
                    expected,
                )
            except StoreError as exc:
                raise InputError(f"cannot download {uri}: {exc}") from exc

        return fetch

    static, pattern = _split_wildcard(key)
    if pattern is None:
        return [_Resolved(uri, key, key.rpartition("/")[2], fetcher(key))]
    glob = compile_glob(pattern)
    strip = len(static) + 1 if static else 0
    try:
        objects = store.list_prefix(static)
    except StoreError as exc:
        raise InputError(f"cannot list {uri}: {exc}") from exc
    return [
        _Resolved(f"s3://{bucket}/{o.key}", o.key, o.key[strip:], fetcher(o.key))
        for o in objects
        if glob.matches(o.key[strip:])
    ]


def _http_validator(url: str, open_url: _Opener) -> dict[str, Any] | None:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with open_url(request, timeout=HTTP_TIMEOUT) as response:
            headers = response.headers
            return {
                "etag": headers.get("ETag"),
                "last_modified": headers.get("Last-Modified"),
                "size": headers.get("Content-Length"),
            }
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise InputError(f"input URL not found ({exc.code}): {url}") from exc
        return None  # e.g. 405: the server does not answer HEAD, so we cannot validate
    except (urllib.error.URLError, OSError) as exc:
        raise InputError(f"cannot reach {url}: {exc}") from exc


def _http_fill(url: str, open_url: _Opener) -> Callable[[Path], str]:
    def fill(tmp: Path) -> str:
        digest = hashlib.sha256()  # as the bytes arrive, not in a second read
        try:
            with open_url(url, timeout=HTTP_TIMEOUT) as response, open(tmp, "wb") as fh:
                while chunk := response.read(1024 * 1024):
                    digest.update(chunk)
                    fh.write(chunk)
        except urllib.error.HTTPError as exc:
            raise InputError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(f"downloading {url} failed: {exc}") from exc
        return digest.hexdigest()

    return fill


def _resolve_http(uri: str, policy: InputPolicy | None) -> list[_Resolved]:
    parsed = urllib.parse.urlparse(uri)
    path = urllib.parse.unquote(parsed.path).lstrip("/")
    name = path.rpartition("/")[2]
    if not name:
        raise InputError(f"cannot name a file after {uri!r}: the URL path has no file name")
    open_url: _Opener = urllib.request.urlopen
    if policy is not None:
        policy.check_url(uri)  # refused before any connection is made
        open_url = policy.opener().open

    def fetch(cache: DownloadCache, dest: Path, expected: str | None) -> str:
        return cache.fetch(uri, _http_validator(uri, open_url), _http_fill(uri, open_url), dest, expected)

    return [_Resolved(uri, path, name, fetch)]


def _resolve(
    uri: str, stores: StoreResolver | None = None, policy: InputPolicy | None = None
) -> list[_Resolved]:
    """The files one input URL or path stands for (wildcards expanded); `policy` checks where a
    local path or http(s) URL leads (None: an upstream output, produced here)."""
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("datum", "dataset", "model"):
        raise InputError(
            f"{uri!r}: {scheme}:// references are resolved through the data catalogue "
            "(runtime.catalogue.input_sources), not downloaded"
        )
    if scheme == "s3":
        return _resolve_s3(uri, stores or StoreResolver())
    if scheme in ("http", "https"):
        if has_wildcards(parsed.path):
            raise InputError(f"wildcards are not supported in HTTP URLs: {uri!r}")
        return _resolve_http(uri, policy)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InputError(f"file URL with a host is not supported: {uri!r}")
        return _resolve_local(urllib.parse.unquote(parsed.path), uri, policy)
    if scheme and len(scheme) > 1:
        raise InputError(f"unsupported input URL {uri!r}: use a local path, file://, s3:// or http(s)://")
    return _resolve_local(uri, Path(uri).expanduser().absolute().as_uri(), policy)


def _target_name(resolved: _Resolved, source: InputSource, keep: KeepDirectories, many: bool) -> str:
    if keep == "none":  # a catalogue file is named by its datum name, not by its store key
        name = (source.path_hint if source.path_hint and not many else resolved.suffix).rpartition("/")[2]
    elif keep == "full":
        name = source.path_hint if source.path_hint and not many else resolved.full
    else:
        name = source.path_hint if source.path_hint and not many else resolved.suffix
    tidy = "/".join(p for p in name.split("/") if p not in ("", "."))
    problem = escape_problem(tidy)
    if problem:
        raise InputError(f"unsafe input file name {name!r} from {resolved.uri}: it {problem}")
    return tidy


def materialise_input(
    name: str,
    sources: Sequence[InputSource],
    inputs_dir: Path,
    cache: DownloadCache,
    *,
    keep_directories: KeepDirectories = "none",
    filename: str | None = None,
    stores: StoreResolver | None = None,
    policy: InputPolicy | None = None,
) -> MaterialisedInput:
    """Put every file of input `name` under `inputs_dir/name/` and describe it for inputs.json.

    `stores` opens `s3://` sources with the configured credentials; `policy` checks the sources (a run
    conf's or default's URLs); None means upstream outputs."""
    result = MaterialisedInput(name)
    dest_root = confined(Path(inputs_dir), name)
    dest_root.mkdir(parents=True, exist_ok=True)
    planned: list[tuple[_Resolved, InputSource, str]] = []
    for source in sources:
        resolved = _resolve(source.uri, stores, policy)
        if not resolved:
            result.warnings.append(f"input {name!r}: {source.uri} matched no files")
        for r in resolved:
            planned.append((r, source, _target_name(r, source, keep_directories, len(resolved) > 1)))
    if filename is not None:
        if len(planned) > 1:
            raise InputError(f"input {name!r} sets filename {filename!r} but has {len(planned)} files")
        planned = [(r, s, filename) for r, s, _ in planned]
    below = Destinations(dest_root)
    destinations = [below(target) for _r, _s, target in planned]  # all checked before any write
    by_target: dict[str, InputFileEntry] = {}
    for (r, source, target), dest in zip(planned, destinations, strict=True):
        if target in by_target:
            result.warnings.append(
                f"input {name!r}: {r.uri} replaces {by_target[target].uri} as {target!r} (same name)"
            )
        digest = r.fetch(cache, dest, source.sha256)
        by_target[target] = InputFileEntry(
            name=target,
            uri=r.uri,
            size=dest.stat().st_size,
            sha256=digest,
            metadata=source.metadata,
            datum_id=source.datum_id,
            catalogue=source.catalogue,
        )
    result.files = list(by_target.values())
    return result
