"""Collect what a step left in `/valohai/outputs` (also after a failure) and upload it.

Every regular file below the outputs dir is an output, named by its `/`-separated path relative
to that dir, with size and a streamed sha256. Properties (tags, alias, dataset versions, any
key) come from two places (VALOHAI.md §4.5):

- a sidecar `<file>.metadata.json` next to an output file;
- `valohai.metadata.jsonl` at the top of the outputs dir, one `{"file", "metadata"}` per line
  (what `valohai.output_properties()` writes).

Both are merged per file; where both set a key, the `.jsonl` value wins (it is the newer, API-
driven mechanism, and valohai-utils merges into it). These property files are not outputs
themselves; a `x.metadata.json` whose `x` does not exist stays an ordinary output.

Any file name is stored: the store key percent-encodes what a key cannot hold (`store.base.path_key`:
a backslash, a newline, `%`, ...), the manifest keeps the real path. The one exception is a name
that is not UTF-8: JSON (the manifest, XCom) cannot hold it, so the file is skipped with a reason.

Symlinks: one that resolves to a regular file inside the outputs dir is collected under its own
name; one that points outside the dir, to a directory, or nowhere is never followed: it is
skipped and reported in `skipped`.

`stage_outputs` is collect and upload together, reading each file once: a `LocalStore` links or
copies it and hashes the bytes it stored in the same pass; an `S3Store` hashes the bytes as the
transfer manager reads them for the upload. Either way the recorded sha256 is of exactly the bytes
stored, even if the file changes meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from valohai_airflow.store.base import ArtifactStore, StoredObject, key_path, normalize_key, tree_key
from valohai_airflow.store.files import hash_fd

SIDECAR_SUFFIX = ".metadata.json"
PROPERTIES_JSONL = "valohai.metadata.jsonl"


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: str  # relative to the outputs dir, `/`-separated
    size: int
    sha256: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    path: str
    reason: str


@dataclass
class OutputCollection:
    root: Path
    files: list[OutputFile] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable property files and the like

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


def sha256_file(path: Path) -> str:
    """Streamed, so multi-gigabyte outputs do not land in memory."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _hash_nofollow(path: Path) -> tuple[int, str]:
    """Size and sha256 of a regular file, refusing to follow a symlink swapped in meanwhile."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return hash_fd(fd)
    finally:
        os.close(fd)


def _is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (os gives them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _scan(root: Path, skipped: list[SkippedEntry]) -> dict[str, Path]:
    """Relative path → file to read (the link target for in-tree symlinks)."""
    real_root = root.resolve()
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            entry = base / name
            if entry.is_symlink():
                rel = entry.relative_to(root).as_posix()
                skipped.append(SkippedEntry(rel, "symlink to a directory is not followed"))
        for name in filenames:
            entry = base / name
            rel = entry.relative_to(root).as_posix()
            if not _is_utf8(rel):
                shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                skipped.append(
                    SkippedEntry(shown, "its name is not UTF-8, which a manifest cannot hold: rename it")
                )
                continue
            st = entry.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = entry.resolve()
                if not target.is_relative_to(real_root):
                    skipped.append(SkippedEntry(rel, f"symlink points outside the outputs dir ({target})"))
                elif not target.is_file():
                    skipped.append(SkippedEntry(rel, "symlink to a missing or non-regular file"))
                else:
                    found[rel] = target
            elif stat.S_ISREG(st.st_mode):
                found[rel] = entry
            else:
                skipped.append(SkippedEntry(rel, "not a regular file"))
    return found


def _read_json_object(path: Path, problems: list[str], label: str) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(f"{label}: cannot read properties: {exc}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{label}: properties must be a JSON object")
        return None
    return value


#: relative path → (size, sha256), or the OSError that kept the file from being read
Digests = dict[str, tuple[int, str] | OSError]


def collect_outputs(outputs_dir: Path) -> OutputCollection:
    """Every output file with size, sha256 and properties; sorted by path."""

    def hash_all(found: dict[str, Path]) -> Digests:
        digests: Digests = {}
        for rel, path in found.items():
            try:
                digests[rel] = _hash_nofollow(path)
            except OSError as exc:
                digests[rel] = exc
        return digests

    return _collect(outputs_dir, hash_all)


@runtime_checkable
class HashingStore(Protocol):
    """A store that hashes what it stores as it stores it (LocalStore, S3Store)."""

    def put_files_hashed(
        self, sources: Mapping[str, Path]
    ) -> dict[str, tuple[StoredObject, int, str] | OSError]: ...


def stage_outputs(
    outputs_dir: Path, store: ArtifactStore, prefix: str
) -> tuple[OutputCollection, dict[str, str]]:
    """`collect_outputs` then `upload_outputs`: the collection and relative path → URI. Into a
    HashingStore each file is read once, stored and hashed in the same pass."""
    if not isinstance(store, HashingStore):
        collection = collect_outputs(outputs_dir)
        return collection, upload_outputs(collection, store, prefix)
    prefix = normalize_key(prefix, allow_empty=True)
    uris: dict[str, str] = {}

    def put(found: dict[str, Path]) -> Digests:
        rels = {tree_key(prefix, rel): rel for rel in found}
        digests: Digests = {}
        for key, done in store.put_files_hashed({key: found[rel] for key, rel in rels.items()}).items():
            if isinstance(done, OSError):
                digests[rels[key]] = done
            else:
                stored, size, sha256 = done
                uris[rels[key]] = stored.uri
                digests[rels[key]] = (size, sha256)
        return digests

    return _collect(outputs_dir, put), uris


def _collect(outputs_dir: Path, digest: Callable[[dict[str, Path]], Digests]) -> OutputCollection:
    """The collection, `digest({relative path: file to read})` giving each file's size and sha256
    (an OSError there skips the file as unreadable)."""
    root = Path(outputs_dir)
    result = OutputCollection(root=root)
    if not root.is_dir():
        return result
    found = _scan(root, result.skipped)
    properties: dict[str, dict[str, Any]] = {}
    property_files: set[str] = set()
    for rel in sorted(found):
        if rel.endswith(SIDECAR_SUFFIX) and rel[: -len(SIDECAR_SUFFIX)] in found:
            property_files.add(rel)
            value = _read_json_object(found[rel], result.problems, rel)
            if value is not None:
                properties.setdefault(rel[: -len(SIDECAR_SUFFIX)], {}).update(value)
    if PROPERTIES_JSONL in found:
        property_files.add(PROPERTIES_JSONL)
        _read_jsonl(found[PROPERTIES_JSONL], found, properties, result.problems)
    digests = digest({rel: found[rel] for rel in sorted(found) if rel not in property_files})
    for rel, done in sorted(digests.items()):
        if isinstance(done, OSError):
            result.skipped.append(SkippedEntry(rel, f"unreadable: {done}"))
            continue
        size, sha256 = done
        result.files.append(OutputFile(rel, size, sha256, properties.get(rel, {})))
    return result


def _read_jsonl(
    path: Path, found: dict[str, Path], properties: dict[str, dict[str, Any]], problems: list[str]
) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{PROPERTIES_JSONL}: cannot read: {exc}")
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label = f"{PROPERTIES_JSONL}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            problems.append(f"{label}: not JSON: {exc}")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            problems.append(f'{label}: expected {{"file": ..., "metadata": {{...}}}}')
            continue
        meta = entry.get("metadata", {})
        if not isinstance(meta, dict):
            problems.append(f"{label}: metadata must be a JSON object")
            continue
        rel = Path(entry["file"]).as_posix().removeprefix("./")
        if rel not in found:
            problems.append(f"{label}: properties for {rel!r}, which is not an output file")
            continue
        properties.setdefault(rel, {}).update(meta)


def upload_outputs(collection: OutputCollection, store: ArtifactStore, prefix: str) -> dict[str, str]:
    """Upload the collected files under `prefix`; returns relative path → URI.

    In-tree symlinks are uploaded as the content they point at (a store has no links)."""
    prefix = normalize_key(prefix, allow_empty=True)
    strip = len(prefix) + 1 if prefix else 0
    plain = [f.path for f in collection.files if not (collection.root / f.path).is_symlink()]
    uris = {key_path(obj.key[strip:]): obj.uri for obj in store.put_tree(collection.root, prefix, plain)}
    for f in collection.files:
        if f.path not in uris:
            target = (collection.root / f.path).resolve()
            uris[f.path] = store.put_file(target, tree_key(prefix, f.path)).uri
    return uris
