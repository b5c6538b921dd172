"""The embedded default store: a directory on the local (or a shared network) filesystem.

Writes go to a temp file in the target directory and are renamed into place, so a reader never
sees half a file. Files are hard-linked when source and store share a filesystem (outputs dirs
are thrown away after upload, so sharing the inode is safe) and copied otherwise; reads always
copy unless `link=True` is asked for, because a container may write into its inputs.
`put_hashed` (what staging outputs uses) also returns the sha256 of what it stored (hashing it
once, as stored) and seals the object (`store.files`) so that reading it back can skip a re-hash.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from valohai_airflow import atomic
from valohai_airflow.store.base import (
    SMALL_OBJECT_LIMIT,
    ArtifactStore,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    StoredObject,
    StoreError,
    normalize_key,
    relative_files,
    tree_key,
)
from valohai_airflow.store.files import copy_hashed, hash_fd, seal, seal_written


def _atomic_place(src: Path, dest: Path, *, link: bool) -> None:
    """Put `src` at `dest` (a hard link where it can be), atomically for readers."""
    with atomic.replacing(dest) as tmp:
        linked = False
        if link:
            tmp.unlink()
            try:
                os.link(src, tmp)
                linked = True
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        if not linked:
            shutil.copyfile(src, tmp)


def _link_same_inode(src: Path, tmp: Path, st: os.stat_result) -> bool:
    """Hard-link `src` (not following a symlink) at the free name `tmp` if it is still the inode
    `st` describes; False when the filesystem cannot link it here or `src` was swapped."""
    try:
        os.link(src, tmp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    linked = os.lstat(tmp)
    if (linked.st_dev, linked.st_ino) != (st.st_dev, st.st_ino):
        tmp.unlink()
        return False
    return True


class LocalStore(ArtifactStore):
    """An ArtifactStore rooted at a local directory."""

    def __init__(self, root: str | os.PathLike[str], *, link: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.link = link
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def local_root(self) -> Path:
        return self.root

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str, *, allow_empty: bool = False) -> Path:
        return self.root.joinpath(*normalize_key(key, allow_empty=allow_empty).split("/"))

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_for_uri(self, uri: str) -> str | None:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme not in ("file", ""):
            return None
        path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme else Path(uri)
        try:
            rel = path.absolute().relative_to(self.root)
        except ValueError:
            return None
        try:
            return normalize_key(rel.as_posix())
        except InvalidKeyError:
            return None

    def _object(self, key: str, path: Path) -> StoredObject:
        return StoredObject(key=key, size=path.stat().st_size, uri=path.as_uri())

    def put_file(self, local: Path, key: str) -> StoredObject:
        key = normalize_key(key)
        dest = self._path(key)
        if not Path(local).is_file():
            raise StoreError(f"cannot store {local}: not a regular file")
        _atomic_place(Path(local), dest, link=self.link)
        return self._object(key, dest)

    def put_hashed(self, local: Path, key: str) -> tuple[StoredObject, int, str]:
        """Store one regular file (a symlink at `local` is refused, never followed) and return it
        with the size and sha256 of the bytes stored: a hard link is hashed in place, a copy (made
        by the kernel) as it lies in the store. OSError: `local` cannot be opened; StoreError: it can,
        but storing it failed."""
        key = normalize_key(key)
        dest = self._path(key)
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{local} is not a regular file")
            try:
                size, sha256 = self._place_hashed(Path(local), fd, st, dest)
            except OSError as exc:
                raise StoreError(f"cannot store {local} as {dest.as_uri()}: {exc}") from exc
        finally:
            os.close(fd)
        return StoredObject(key=key, size=size, uri=dest.as_uri()), size, sha256

    def put_files_hashed(
        self, sources: Mapping[str, Path]
    ) -> dict[str, tuple[StoredObject, int, str] | OSError]:
        """`put_hashed` for each key's local file; a file that cannot be opened gets its OSError
        (it is not stored)."""
        out: dict[str, tuple[StoredObject, int, str] | OSError] = {}
        for key, local in sources.items():
            try:
                out[key] = self.put_hashed(local, key)
            except OSError as exc:
                out[key] = exc
        return out

    def _place_hashed(self, local: Path, fd: int, st: os.stat_result, dest: Path) -> tuple[int, str]:
        with atomic.replacing(dest) as tmp:
            tmp.unlink()  # a free name, for the link or for a file made here and nowhere else
            if self.link and _link_same_inode(local, tmp, st):
                size, sha256 = hash_fd(fd)  # the object's own bytes: it is this inode
                seal(fd, sha256, st)  # only if unchanged while hashed, and not racy
            else:
                out = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    size, sha256 = copy_hashed(fd, out)  # the bytes as stored
                    seal_written(out, sha256)
                finally:
                    os.close(out)
        return size, sha256

    def put_tree(
        self, local_dir: Path, prefix: str, files: Sequence[str] | None = None
    ) -> list[StoredObject]:
        prefix = normalize_key(prefix, allow_empty=True)
        out = []
        for rel in relative_files(Path(local_dir), files):
            out.append(self.put_file(Path(local_dir) / rel, tree_key(prefix, rel)))
        return out

    def put_bytes(self, data: bytes, key: str) -> StoredObject:
        key = normalize_key(key)
        dest = self._path(key)
        atomic.write_bytes(dest, data)
        return self._object(key, dest)

    def create_bytes(self, data: bytes, key: str) -> StoredObject:
        """A complete temp file hard-linked at the key: link() fails with EEXIST when the name is
        taken, atomically, also on NFS (unlike a rename, which replaces)."""
        key = normalize_key(key)
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=atomic.TEMP_PREFIX, dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(name, dest)
        except FileExistsError:
            raise ObjectExistsError(dest.as_uri()) from None
        finally:
            os.unlink(name)
        return self._object(key, dest)

    def list_prefix(self, prefix: str = "") -> list[StoredObject]:
        prefix = normalize_key(prefix, allow_empty=True)
        base = self._path(prefix, allow_empty=True)
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                if name.startswith(atomic.TEMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                if path.is_symlink():
                    continue
                key = path.relative_to(self.root).as_posix()
                out.append(self._object(key, path))
        return sorted(out, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _existing(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(path.as_uri())
        return path

    def get_file(self, key: str, dest: Path, *, link: bool = False) -> Path:
        src = self._existing(key)
        _atomic_place(src, Path(dest), link=link)
        return Path(dest)

    def get_tree(self, prefix: str, dest_dir: Path) -> list[Path]:
        prefix = normalize_key(prefix, allow_empty=True)
        objects = self.list_prefix(prefix)
        if not objects:
            raise ObjectNotFoundError(self._path(prefix, allow_empty=True).as_uri(), "empty prefix")
        out = []
        for obj in objects:
            rel = obj.key[len(prefix) + 1 :] if prefix else obj.key
            out.append(self.get_file(obj.key, Path(dest_dir) / rel))
        return out

    def read_bytes(self, key: str, max_bytes: int = SMALL_OBJECT_LIMIT) -> bytes:
        path = self._existing(key)
        size = path.stat().st_size
        if size > max_bytes:
            raise StoreError(f"{path.as_uri()} is {size} bytes, more than the {max_bytes} allowed here")
        return path.read_bytes()

    def delete_prefix(self, prefix: str) -> int:
        prefix = normalize_key(prefix)
        path = self._path(prefix)
        if path.is_file():
            path.unlink()
            return 1
        if not path.is_dir():
            return 0
        count = sum(len(names) for _d, _s, names in os.walk(path))
        shutil.rmtree(path)
        return count
