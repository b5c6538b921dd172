from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from valohai_airflow.store import (
    ArtifactStore,
    InvalidKeyError,
    LocalStore,
    ObjectNotFoundError,
    StoreError,
    open_store,
)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "sub/b.bin": os.urandom(1000),
        "sub/deeper/c.json": b'{"x": 1}',
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_open_store_chooses_by_scheme(tmp_path: Path) -> None:
    plain = open_store(tmp_path / "plain")
    assert isinstance(plain, LocalStore)
    assert isinstance(plain, ArtifactStore)
    via_url = open_store((tmp_path / "u").as_uri())
    assert isinstance(via_url, LocalStore) and via_url.root == tmp_path / "u"
    assert via_url.url == (tmp_path / "u").as_uri()
    with pytest.raises(StoreError, match="unsupported"):
        open_store("ftp://example.com/x")
    with pytest.raises(StoreError):
        open_store("")


def test_put_tree_list_get_roundtrip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    store = LocalStore(tmp_path / "store")
    stored = store.put_tree(src, "run/node/0/1")
    assert [o.key for o in stored] == sorted(f"run/node/0/1/{k}" for k in files)
    listed = store.list_prefix("run/node")
    assert [(o.key, o.size) for o in listed] == [(o.key, o.size) for o in stored]
    assert store.list_prefix("run/no") == []  # a prefix is a directory, not a string prefix
    assert listed[0].uri == (tmp_path / "store/run/node/0/1/a.txt").as_uri()
    assert store.uri("run/node/0/1/a.txt") == listed[0].uri
    assert store.key_for_uri(listed[0].uri) == "run/node/0/1/a.txt"
    assert store.key_for_uri((tmp_path / "elsewhere").as_uri()) is None

    out = tmp_path / "out"
    got = store.get_tree("run/node/0/1", out)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in got} == files
    assert store.read_json("run/node/0/1/sub/deeper/c.json") == {"x": 1}


def test_put_links_but_get_copies(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 100)
    store = LocalStore(tmp_path / "store")
    store.put_file(src, "k/f.bin")
    stored = tmp_path / "store/k/f.bin"
    assert stored.stat().st_ino == src.stat().st_ino  # same filesystem: hard link, no copy
    dest = store.get_file("k/f.bin", tmp_path / "in/f.bin")
    assert dest.stat().st_ino != stored.stat().st_ino  # a container writing its input cannot touch the store
    dest.write_bytes(b"changed")
    assert stored.read_bytes() == b"x" * 100


def test_copy_mode_and_put_bytes_json(tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(b"data")
    store = LocalStore(tmp_path / "store", link=False)
    store.put_file(src, "f.bin")
    assert (tmp_path / "store/f.bin").stat().st_ino != src.stat().st_ino
    store.put_json({"b": [1, 2]}, "m/manifest.json")
    assert store.read_json("m/manifest.json") == {"b": [1, 2]}
    assert store.exists("m/manifest.json") and not store.exists("m/other.json")


def test_missing_and_bad_keys(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(ObjectNotFoundError, match="not found in the artefact store: file://"):
        store.get_file("nope/x", tmp_path / "x")
    with pytest.raises(ObjectNotFoundError):
        store.read_json("nope.json")
    with pytest.raises(ObjectNotFoundError):
        store.get_tree("nothing", tmp_path / "d")
    for bad in ("../escape", "/abs", "a/../../b", "a\\b", ""):
        with pytest.raises(InvalidKeyError):
            store.put_bytes(b"x", bad)
    assert not (tmp_path / "escape").exists()
    store.put_bytes(b"not json", "bad.json")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read_json("bad.json")
    with pytest.raises(StoreError, match="more than"):
        store.read_bytes("bad.json", max_bytes=3)


def test_delete_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    make_tree(tmp_path / "src")
    store.put_tree(tmp_path / "src", "p")
    store.put_bytes(b"1", "pp/keep")
    assert store.delete_prefix("p") == 3
    assert [o.key for o in store.list_prefix()] == ["pp/keep"]
    assert store.delete_prefix("pp/keep") == 1
    assert store.delete_prefix("gone") == 0


def test_put_tree_skips_symlinks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "real").write_bytes(b"r")
    (tmp_path / "secret").write_bytes(b"s")
    (src / "link").symlink_to(tmp_path / "secret")
    store = LocalStore(tmp_path / "store")
    assert [o.key for o in store.put_tree(src, "x")] == ["x/real"]


def test_concurrent_writers_never_expose_partial_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", link=False)
    payloads = [bytes([i]) * 2_000_000 for i in range(4)]
    seen: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:
        path = tmp_path / "store/shared.bin"
        while not stop.is_set():
            if path.exists():
                seen.append(path.read_bytes())

    def writer(data: bytes) -> None:
        for _ in range(5):
            store.put_bytes(data, "shared.bin")

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    r.join()
    assert seen, "the reader saw nothing"
    assert all(data in payloads for data in seen)
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".vh-tmp-")]


def test_any_file_name_gets_a_key_that_decodes_back() -> None:
    from valohai_airflow.store.base import key_path, normalize_key, path_key

    names = [
        "a\\b",
        "new\nline",
        "50%.csv",
        "%41",
        "d[1]*?.txt",
        ".vh-tmp-x",
        "bad\udcffbyte",
        "plain/dir.txt",
    ]
    for name in names:
        key = path_key(name)
        assert normalize_key(key) == key and key_path(key) == name
        assert not any(c in key for c in "\\\n*?[") and not key.startswith(".vh-tmp-")
    assert path_key("plain/dir.txt") == "plain/dir.txt"  # ordinary names are unchanged


def test_put_tree_stores_a_hidden_prefix_name_visibly(tmp_path: Path) -> None:
    """A step's `.vh-tmp-x` would have been stored as the store's own temp file and never listed."""
    src = tmp_path / "src"
    src.mkdir()
    (src / ".vh-tmp-x").write_text("mine")
    store = LocalStore(tmp_path / "store")
    store.put_tree(src, "p", [".vh-tmp-x"])
    assert [o.key for o in store.list_prefix("p")] == ["p/%2Evh-tmp-x"]
