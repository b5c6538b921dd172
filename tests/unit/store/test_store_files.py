"""Seals, kernel copies and LocalStore.put_hashed (store.files), on real files of the test's disk."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from valohai_airflow.store import LocalStore
from valohai_airflow.store.files import (
    RACY_NS,
    SEAL_XATTR,
    clone_or_copy,
    copy_hashed,
    hash_fd,
    seal,
    seal_written,
    sealed_sha256,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def old_file(path: Path, data: bytes) -> Path:
    """A file last written well before the racy window (as outputs are by the time they are staged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time_ns() - 10 * RACY_NS
    os.utime(path, ns=(past, past))
    return path


def sealed(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return sealed_sha256(fh.fileno())


def corrupt_in_place(path: Path) -> None:
    """Overwrite the first byte, keeping the size: what a stray writer or a bad tool does."""
    with open(path, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))


@pytest.fixture(autouse=True)
def _xattrs_work(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, SEAL_XATTR, b"x")
    except OSError as exc:  # pragma: no cover - the CI disk has them
        pytest.skip(f"no user xattrs on {tmp_path}: {exc}")


def test_hash_fd_and_clone_or_copy(tmp_path: Path) -> None:
    for size in (0, 1, 1024 * 1024, 3 * 1024 * 1024 + 5):
        data = os.urandom(size)
        src = old_file(tmp_path / f"src-{size}", data)
        dest = tmp_path / f"dest-{size}"
        with open(src, "rb") as s, open(dest, "w+b") as d:
            clone_or_copy(s.fileno(), d.fileno())
            assert hash_fd(d.fileno()) == (size, sha(data))
        assert dest.read_bytes() == data


def test_copy_hashed_hashes_what_it_stored_also_while_copying_a_big_file(tmp_path: Path) -> None:
    for size in (5, 20 * 1024 * 1024 + 3):  # the second is copied in steps by a helper thread
        data = os.urandom(size)
        src = old_file(tmp_path / f"src-{size}", data)
        dest = tmp_path / f"dest-{size}"
        with open(src, "rb") as s, open(dest, "w+b") as d:
            assert copy_hashed(s.fileno(), d.fileno()) == (size, sha(data))
        assert dest.read_bytes() == data


def test_a_seal_holds_only_while_size_and_mtime_do(tmp_path: Path) -> None:
    path = old_file(tmp_path / "f", b"hello")
    with open(path, "rb") as fh:
        assert seal(fh.fileno(), sha(b"hello"), os.fstat(fh.fileno()))
    assert sealed(path) == sha(b"hello")
    corrupt_in_place(path)  # same size, new mtime
    assert sealed(path) is None
    again = old_file(tmp_path / "g", b"hello")
    with open(again, "rb") as fh:
        seal(fh.fileno(), sha(b"hello"), os.fstat(fh.fileno()))
    with open(again, "ab") as fh:
        fh.write(b"!")
    assert sealed(again) is None
    os.setxattr(again, SEAL_XATTR, b"v0 nonsense")
    assert sealed(again) is None


def test_bytes_changed_within_the_racy_window_are_not_sealed(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.write_bytes(b"just written")
    with open(fresh, "rb") as fh:
        assert not seal(fh.fileno(), sha(b"just written"), os.fstat(fh.fileno()))
        seal_written(fh.fileno(), sha(b"just written"))  # ours: backdated first, so sealed at once
    assert sealed(fresh) == sha(b"just written")
    moved = old_file(tmp_path / "moved", b"abc")
    with open(moved, "rb") as fh:
        before = os.fstat(fh.fileno())
        moved.write_bytes(b"xyz")  # changed after it was hashed
        assert not seal(fh.fileno(), sha(b"abc"), before)


@pytest.mark.parametrize("link", [True, False])
def test_put_hashed_stores_hashes_and_seals(tmp_path: Path, link: bool) -> None:
    data = os.urandom(100_000)
    src = old_file(tmp_path / "out/model.bin", data)
    store = LocalStore(tmp_path / "store", link=link)
    obj, size, digest = store.put_hashed(src, "run/model.bin")
    stored = tmp_path / "store/run/model.bin"
    assert (obj.key, obj.size, obj.uri, size, digest) == (
        "run/model.bin",
        100_000,
        stored.as_uri(),
        100_000,
        sha(data),
    )
    assert stored.read_bytes() == data
    assert (stored.stat().st_ino == src.stat().st_ino) is link
    assert sealed(stored) == sha(data)
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".vh-tmp-")]


def test_put_hashed_does_not_seal_a_fresh_hard_link_and_refuses_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "out/new.bin"
    src.parent.mkdir()
    src.write_bytes(b"written a moment ago")
    store = LocalStore(tmp_path / "store")
    _obj, _size, digest = store.put_hashed(src, "k/new.bin")
    assert digest == sha(b"written a moment ago") and sealed(tmp_path / "store/k/new.bin") is None
    (tmp_path / "out/link").symlink_to(src)
    with pytest.raises(OSError):
        store.put_hashed(tmp_path / "out/link", "k/link")
    assert not (tmp_path / "store/k/link").exists()
