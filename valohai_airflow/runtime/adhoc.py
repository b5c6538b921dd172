"""Ad hoc code (`valohai-airflow run --adhoc`, Valohai's `vh exec run --adhoc`), without Airflow.

The client packs the working tree into a snapshot: the files `runtime.repository` keeps (the same
selection as a node's copy of the dags folder: `DEFAULT_IGNORE` and `.vhignore`), as a deterministic
gzipped tar (sorted names, mtime 0, owner 0:0, modes kept, symlinks as links). Its identifier is the
sha256 of the tarball, shown as `~<sha256>` like Valohai's ad hoc commits (valohai-cli computes
`~` + sha256 of its tarball the same way). It goes to the artefact store under
`adhoc/<sha256>.tar.gz` (content-addressed: uploaded once) and the run conf names it
(`valohai.adhoc` = {uri, sha256, commit}).

At run time each node's `/valohai/repository` is the snapshot instead of the dags folder's copy
(downloaded, its sha256 checked, extracted with tarfile's `data` filter), `execution.json`'s
`valohai.commit-identifier` is its identifier and the reuse key covers it. The DAG's shape,
parameters and commands stay the deployed valohai.yaml's: a snapshot whose valohai.yaml defines the
node's step differently fails the node before its container starts.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from valohai_airflow.errors import ValohaiAirflowError
from valohai_airflow.plan.conf_keys import ADHOC_KEY
from valohai_airflow.runtime.outputs import sha256_file
from valohai_airflow.runtime.repository import VHIGNORE, RepositoryRules
from valohai_airflow.sizes import size_text
from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.yaml_loader import load_yaml
from valohai_airflow.store.base import ArtifactStore, StoreError, join_key
from valohai_airflow.store.resolver import StoreResolver

DEFAULT_MAX_SIZE = 500 * 1024**2  # the kept files' total size, uncompressed
PREFIX = "adhoc"  # the store prefix of snapshots
VALOHAI_YAML = "valohai.yaml"
_SHOWN = 5


class AdhocError(ValohaiAirflowError):
    """A snapshot that cannot be made, found or used."""


@dataclass(frozen=True)
class Snapshot:
    """A packed working tree: the tarball on disk, its content hash, and what it holds."""

    tarball: Path
    sha256: str
    files: int
    size: int  # the kept files' total size, uncompressed

    @property
    def commit(self) -> str:
        return commit_identifier(self.sha256)

    @property
    def key(self) -> str:
        return snapshot_key(self.sha256)


def snapshot_key(sha256: str) -> str:
    """Where the snapshot of this content lies in the artefact store."""
    return join_key(PREFIX, f"{sha256}.tar.gz")


def commit_identifier(sha256: str) -> str:
    """Valohai's spelling of an ad hoc commit."""
    return f"~{sha256}"


def _kept(root: Path) -> list[tuple[str, Path, int]]:
    """(relative path, path, size) of every file the snapshot holds, sorted; a symlink that leaves
    the tree is refused (extraction would refuse it on the worker)."""
    found = []
    for relative, path in sorted(RepositoryRules.load(root).walk()):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
            resolved = os.path.normpath(os.path.join(os.path.dirname(relative), target))
            if os.path.isabs(target) or resolved == ".." or resolved.startswith("../"):
                raise AdhocError(
                    f"{path}: a symlink to {target!r}, outside the project folder, cannot be sent",
                    hint=f"list it in {root / VHIGNORE} or replace it by the file",
                )
            found.append((relative, path, 0))
        elif stat.S_ISREG(info.st_mode):
            found.append((relative, path, info.st_size))
    return found


def _too_large(root: Path, kept: list[tuple[str, Path, int]], total: int, limit: int) -> AdhocError:
    """The refusal: the size, the limit, the biggest files and folders, and how to leave them out."""
    tops: dict[str, int] = {}
    for relative, _, size in kept:
        head, sep, _ = relative.partition("/")
        name = f"{head}/" if sep else head
        tops[name] = tops.get(name, 0) + size
    biggest = sorted(tops.items(), key=lambda item: (-item[1], item[0]))[:_SHOWN]
    shown = ", ".join(f"{name} ({size_text(size)})" for name, size in biggest)
    return AdhocError(
        f"{root}: the ad hoc code is {size_text(total)} in {len(kept)} files, over the limit of "
        f"{size_text(limit)}; the biggest: {shown}; nothing was uploaded or started",
        hint=f"leave data out with {root / VHIGNORE} (gitignore syntax, e.g. `data/`, as Valohai's CLI "
        "reads it) and give it as an input, or raise the limit with --adhoc-max-size "
        "(VALOHAI_AIRFLOW_ADHOC_MAX_SIZE, adhoc_max_size in client.toml)",
    )


def make_snapshot(root: Path, dest: Path, max_size: int = DEFAULT_MAX_SIZE) -> Snapshot:
    """Pack the project folder `root` into `dest` (a .tar.gz); refused above `max_size` before any
    byte is written. The same tree gives the same bytes, hence the same identifier."""
    if not (root / VALOHAI_YAML).is_file():
        raise AdhocError(f"{root}: no {VALOHAI_YAML}", hint="--adhoc sends the folder valohai.yaml is in")
    kept = _kept(root)
    total = sum(size for _, _, size in kept)
    if total > max_size:
        raise _too_large(root, kept, total, max_size)
    digest = hashlib.sha256()
    with open(dest, "wb") as raw:
        hashing = _Hashing(raw, digest)
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0) as packed,
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for relative, path, _ in kept:
                _add(tar, relative, path)
    return Snapshot(dest, digest.hexdigest(), len(kept), total)


class _Hashing(io.RawIOBase):
    """Writes through to a file while hashing what passes (the tarball is read once)."""

    def __init__(self, raw: BinaryIO, digest: Any) -> None:
        self.raw, self.digest = raw, digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        return self.raw.write(view)


def _add(tar: tarfile.TarFile, relative: str, path: Path) -> None:
    info = path.lstat()
    entry = tarfile.TarInfo(relative)
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.mtime = 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    if stat.S_ISLNK(info.st_mode):
        entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(path)
        tar.addfile(entry)
        return
    entry.size = info.st_size
    with path.open("rb") as handle:
        tar.addfile(entry, handle)


def upload_snapshot(store: ArtifactStore, snapshot: Snapshot) -> tuple[str, bool]:
    """The snapshot's URI in the store, and whether it was uploaded now (False: it was there)."""
    if store.exists(snapshot.key):
        return store.uri(snapshot.key), False
    return store.put_file(snapshot.tarball, snapshot.key).uri, True


def snapshot_conf(snapshot: Snapshot, uri: str) -> dict[str, Any]:
    """The run conf entry that makes a run's nodes use the snapshot."""
    return {ADHOC_KEY: {"uri": uri, "sha256": snapshot.sha256, "commit": snapshot.commit}}


@dataclass(frozen=True)
class Sent:
    """A snapshot sent to the store: what the run conf gets, and what to tell the user."""

    conf: dict[str, Any]
    commit: str
    uri: str
    uploaded: bool  # False: the same code was in the store already
    files: int
    size: int


def send_working_tree(root: Path, store: ArtifactStore, max_size: int = DEFAULT_MAX_SIZE) -> Sent:
    """Pack `root` and put it in the store (once per content); refused above `max_size`, then
    nothing is uploaded."""
    with tempfile.TemporaryDirectory(prefix="valohai-adhoc-") as scratch:
        snapshot = make_snapshot(root, Path(scratch) / "adhoc.tar.gz", max_size)
        try:
            uri, uploaded = upload_snapshot(store, snapshot)
        except (StoreError, OSError) as error:
            raise AdhocError(
                f"uploading the ad hoc code to {store.uri(snapshot.key)} failed: {error}"
            ) from error
    return Sent(snapshot_conf(snapshot, uri), snapshot.commit, uri, uploaded, snapshot.files, snapshot.size)


@dataclass(frozen=True)
class AdhocCode:
    """The snapshot a run's conf names."""

    uri: str
    sha256: str

    @property
    def commit(self) -> str:
        return commit_identifier(self.sha256)

    @classmethod
    def of(cls, conf: Mapping[str, Any]) -> AdhocCode | None:
        """The run conf's snapshot; None when the run uses the dags folder's code."""
        value = conf.get(ADHOC_KEY)
        if value in (None, {}, ""):
            return None
        uri = value.get("uri") if isinstance(value, Mapping) else None
        sha256 = value.get("sha256") if isinstance(value, Mapping) else None
        if not isinstance(uri, str) or not isinstance(sha256, str) or len(sha256) != 64:
            raise AdhocError(
                f"run conf {ADHOC_KEY!r}: expected {{uri, sha256}} of a snapshot, got {value!r}",
                hint="`valohai-airflow run --adhoc` writes it",
            )
        return cls(uri, sha256.lower())

    def extract(self, stores: StoreResolver, dest: Path, scratch: Path) -> None:
        """Download the snapshot into `scratch`, check its sha256 and extract it into `dest` (tarfile's
        `data` filter: no path or link outside `dest`, no devices). A missing or corrupt snapshot is
        an AdhocError naming the URI; so is a URI anywhere but the snapshot's place in the workers'
        store (a run conf names it: it may not read other files of the worker or other buckets)."""
        tarball = scratch / "adhoc.tar.gz"
        store, key = stores.store, snapshot_key(self.sha256)
        if store.key_for_uri(self.uri) != key:
            raise AdhocError(
                f"run conf {ADHOC_KEY!r}: {self.uri} is not where the ad hoc code of sha256 "
                f"{self.sha256} lies in the artefact store ({store.uri(key)})",
                hint="`valohai-airflow run --adhoc` uploads it there; give --store the workers' store",
            )
        try:
            store.get_file(key, tarball)
        except (StoreError, OSError) as error:
            raise AdhocError(f"the ad hoc code {self.uri} cannot be read: {error}") from error
        found = sha256_file(tarball)
        if found != self.sha256:
            raise AdhocError(
                f"the ad hoc code {self.uri} is corrupt: its sha256 is {found}, not {self.sha256}",
                hint="run `valohai-airflow run --adhoc` again to upload it anew",
            )
        try:
            with tarfile.open(tarball, mode="r:gz") as tar:
                tar.extractall(dest, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise AdhocError(f"the ad hoc code {self.uri} cannot be extracted: {error}") from error
        finally:
            tarball.unlink(missing_ok=True)


def step_differences(deployed_root: Path, snapshot_root: Path, step: str) -> list[str]:
    """The keys of step `step` that the snapshot's valohai.yaml defines differently from the deployed
    one (the YAML as written, compared after parsing); ["the whole step"] when either lacks it."""
    deployed = _step_mapping(deployed_root / VALOHAI_YAML, step)
    mine = _step_mapping(snapshot_root / VALOHAI_YAML, step)
    if deployed is None or mine is None:
        return [] if deployed == mine else ["the whole step (it is missing from one valohai.yaml)"]
    return sorted(key for key in deployed.keys() | mine.keys() if deployed.get(key) != mine.get(key))


def _step_mapping(path: Path, step: str) -> dict[str, Any] | None:
    try:
        items = load_yaml(path.read_bytes(), str(path)).data
    except (OSError, ValohaiSpecError) as error:
        raise AdhocError(f"{path}: cannot read it ({error})") from error
    for item in items if isinstance(items, list) else []:
        found = item.get("step") if isinstance(item, dict) else None
        if isinstance(found, dict) and found.get("name") == step:
            return found
    return None


def check_step(deployed_root: Path, snapshot_root: Path, node: str, step: str, code: AdhocCode) -> None:
    """Refuse a snapshot that changes the node's step: the DAG runs the deployed definition."""
    differences = step_differences(deployed_root, snapshot_root, step)
    if differences:
        raise AdhocError(
            f"node {node!r}: the ad hoc code {code.commit[:13]}… defines step {step!r} differently from "
            f"the deployed valohai.yaml ({', '.join(differences)}); a DAG's steps, parameters and commands "
            "come from the valohai.yaml in the dags folder; the container was not started",
            hint="deploy the changed valohai.yaml to the dags folder, or try it with `valohai-airflow run --local`",
        )
