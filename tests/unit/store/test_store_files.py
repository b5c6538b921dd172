"""Seals, kernel copies and LocalStore.put_hashed (store.files), on real files of the test's disk."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.files import rewritten
from valohai_airflow.store import LocalStore, StoreError
from valohai_airflow.store.files import (
    _CHUNK,
    _STEP,
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


_BOUNDARIES = sorted(
    {0, 1, _CHUNK - 1, _CHUNK, _CHUNK + 1, 3 * _CHUNK + 7, _STEP}
    | {2 * _STEP - 1, 2 * _STEP, 2 * _STEP + 1, 3 * _STEP + _CHUNK + 1}  # the threaded copy from 2 steps on
)


@pytest.mark.parametrize("link", [True, False])
def test_the_sha256_is_of_the_stored_bytes_at_every_chunk_and_step_boundary(
    tmp_path: Path, link: bool
) -> None:
    blob = os.urandom(max(_BOUNDARIES))
    store = LocalStore(tmp_path / "store", link=link)
    for size in _BOUNDARIES:
        data = blob[:size]
        src = old_file(tmp_path / f"out/{size}.bin", data)
        with open(src, "rb") as s, open(tmp_path / f"copy-{size}", "w+b") as d:
            assert copy_hashed(s.fileno(), d.fileno()) == (size, sha(data))
            assert hash_fd(s.fileno()) == (size, sha(data))
        _obj, stored_size, digest = store.put_hashed(src, f"run/{size}.bin")
        stored = (tmp_path / f"store/run/{size}.bin").read_bytes()
        assert (stored_size, digest) == (size, hashlib.sha256(stored).hexdigest())
        assert stored == data and sealed(tmp_path / f"store/run/{size}.bin") == digest


def _no_partial_objects(store_dir: Path, key: str, earlier: bytes) -> None:
    """The key still holds the earlier object whole, and no temp file is left beside it."""
    assert (store_dir / key).read_bytes() == earlier
    assert [p.name for p in (store_dir / key).parent.iterdir()] == [Path(key).name]


def test_a_copy_that_fails_midway_leaves_no_partial_object(tmp_path: Path) -> None:
    """The kernel's file-size limit (RLIMIT_FSIZE: EFBIG past it, as a full disk fails a write)
    stops the copy midway, in the copying thread for the big file and in the caller's for the
    smaller one; the earlier object at the key stays whole."""
    store = LocalStore(tmp_path / "store", link=False)
    limit = 10 * _CHUNK
    for size in (limit + _CHUNK, 3 * _STEP + 1):  # below 2 steps: copied in the caller's thread
        src = old_file(tmp_path / f"out/{size}.bin", os.urandom(size))
        store.put_bytes(b"earlier", f"{size}/model.bin")
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            with pytest.raises(StoreError, match=f"{size}.bin.*File too large"):
                store.put_hashed(src, f"{size}/model.bin")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
        _no_partial_objects(tmp_path / "store", f"{size}/model.bin", b"earlier")


def test_a_store_whose_disk_fills_midway_keeps_no_partial_object(tmp_path: Path) -> None:
    """A real full disk: a 12 MiB tmpfs as the store (so the output, on the test's disk, is copied,
    not linked). Needs root to mount it."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a tmpfs needs root")
    try:
        store = LocalStore(mount, link=True)  # a link across filesystems cannot be: a copy
        store.put_bytes(b"earlier", "run/model.bin")
        for size in (13 * _CHUNK, 3 * _STEP + 1):  # the caller's thread, then the copying thread
            src = old_file(tmp_path / f"out/{size}.bin", os.urandom(size))
            with pytest.raises(StoreError, match="No space left on device"):
                store.put_hashed(src, "run/model.bin")
            _no_partial_objects(mount, "run/model.bin", b"earlier")
        data = os.urandom(_STEP)  # the space is free again
        _obj, size, digest = store.put_hashed(old_file(tmp_path / "out/fits.bin", data), "run/model.bin")
        assert (size, digest) == (len(data), sha(data)) and (mount / "run/model.bin").read_bytes() == data
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_output_rewritten_while_it_is_copied_is_recorded_as_stored(tmp_path: Path) -> None:
    """A real thread rewriting the output between two contents while the store copies it (in
    steps, on the helper thread): the sha256 recorded is of the bytes the store holds, whatever
    mix it got."""
    contents = [os.urandom(3 * _STEP), os.urandom(3 * _STEP)]
    src = old_file(tmp_path / "out/moving.bin", contents[0])
    with rewritten(src, contents):
        _obj, size, digest = LocalStore(tmp_path / "store", link=False).put_hashed(src, "run/moving.bin")
    stored = (tmp_path / "store/run/moving.bin").read_bytes()
    assert (size, digest) == (len(stored), sha(stored)) and sealed(
        tmp_path / "store/run/moving.bin"
    ) == digest
