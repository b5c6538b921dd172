from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import tree, write
from valohai_airflow.runtime.inputs import DownloadCache, InputError, InputSource, materialise_input


@pytest.fixture
def cache(tmp_path: Path) -> DownloadCache:
    return DownloadCache(tmp_path / "cache")


def test_local_paths_and_file_urls(tmp_path: Path, data_dir: Path, cache: DownloadCache) -> None:
    inputs = tmp_path / "inputs"
    result = materialise_input(
        "data",
        [InputSource(str(data_dir / "a/x.csv")), InputSource((data_dir / "a/y.txt").as_uri())],
        inputs,
        cache,
    )
    assert tree(inputs, "data") == {"x.csv": b"ax", "y.txt": b"ay"}
    assert [(f.name, f.size, f.sha256) for f in result.files] == [
        ("x.csv", 2, hashlib.sha256(b"ax").hexdigest()),
        ("y.txt", 2, hashlib.sha256(b"ay").hexdigest()),
    ]
    assert result.files[0].uri == (data_dir / "a/x.csv").as_uri()
    with pytest.raises(InputError, match="not found"):
        materialise_input("m", [InputSource(str(tmp_path / "missing.csv"))], inputs, cache)


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ("none", {"x.csv": b"bx", "z.csv": b"bz"}),  # a/x.csv is replaced by b/x.csv (warned)
        ("suffix", {"a/x.csv": b"ax", "b/x.csv": b"bx", "b/deep/z.csv": b"bz"}),
    ],
)
def test_local_wildcards_and_keep_directories(
    tmp_path: Path, data_dir: Path, cache: DownloadCache, keep: Any, expected: dict[str, bytes]
) -> None:
    inputs = tmp_path / "inputs"
    result = materialise_input(
        "csvs", [InputSource(f"{data_dir}/**/*.csv")], inputs, cache, keep_directories=keep
    )
    assert tree(inputs, "csvs") == expected
    assert bool(result.warnings) == (keep == "none")


def test_keep_directories_full_and_filename(tmp_path: Path, data_dir: Path, cache: DownloadCache) -> None:
    inputs = tmp_path / "inputs"
    materialise_input("f", [InputSource(f"{data_dir}/a/*.csv")], inputs, cache, keep_directories="full")
    assert tree(inputs, "f") == {f"{data_dir.as_posix().lstrip('/')}/a/x.csv": b"ax"}
    materialise_input("one", [InputSource(str(data_dir / "a/x.csv"))], inputs, cache, filename="train.csv")
    assert tree(inputs, "one") == {"train.csv": b"ax"}
    with pytest.raises(InputError, match="filename"):
        materialise_input("two", [InputSource(f"{data_dir}/*/x.csv")], inputs, cache, filename="t.csv")
    # an upstream output keeps its own relative path with keep-directories
    materialise_input(
        "edge",
        [InputSource(str(data_dir / "b/deep/z.csv"), path_hint="results/z.csv", metadata=({"k": 1},))],
        inputs,
        cache,
        keep_directories="suffix",
    )
    assert tree(inputs, "edge") == {"results/z.csv": b"bz"}


def test_catalogue_references_are_not_downloaded(tmp_path: Path, cache: DownloadCache) -> None:
    for url in ("datum://0123abcd", "dataset://images/latest", "model://churn/1"):
        with pytest.raises(InputError, match=r"resolved through the data catalogue"):
            materialise_input("d", [InputSource(url)], tmp_path / "inputs", cache)
    with pytest.raises(InputError, match="unsupported"):
        materialise_input("d", [InputSource("gs://bucket/x")], tmp_path / "inputs", cache)


def test_checksum_mismatch_is_an_error(tmp_path: Path, data_dir: Path, cache: DownloadCache) -> None:
    with pytest.raises(InputError, match="checksum mismatch"):
        materialise_input(
            "d", [InputSource(str(data_dir / "a/x.csv"), sha256="0" * 64)], tmp_path / "inputs", cache
        )


# --- HTTP -----------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    gets = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Handler.lock:
            _Handler.gets += 1
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    _Handler.gets = 0
    handler = lambda *a, **kw: _Handler(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_http_download_cache(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    payload = os.urandom(300_000)
    write(root / "files/model.bin", payload)
    cache = DownloadCache(tmp_path / "cache")
    inputs = tmp_path / "inputs"
    first = materialise_input("m", [InputSource(f"{base}/files/model.bin")], inputs, cache)
    assert tree(inputs, "m") == {"model.bin": payload}
    assert first.files[0].sha256 == hashlib.sha256(payload).hexdigest() and _Handler.gets == 1
    materialise_input("m2", [InputSource(f"{base}/files/model.bin")], inputs, cache)
    assert _Handler.gets == 1  # Last-Modified and size unchanged: cache hit
    # a corrupted cache blob is detected by its sha256 and fetched again
    blob = next((tmp_path / "cache").glob("*/blob"))
    blob.write_bytes(b"corrupt")
    materialise_input("m3", [InputSource(f"{base}/files/model.bin")], inputs, cache)
    assert _Handler.gets == 2 and tree(inputs, "m3") == {"model.bin": payload}
    write(root / "files/model.bin", b"new version, different size")
    materialise_input("m4", [InputSource(f"{base}/files/model.bin")], inputs, cache)
    assert _Handler.gets == 3 and tree(inputs, "m4") == {"model.bin": b"new version, different size"}
    with pytest.raises(InputError, match="not found"):
        materialise_input("x", [InputSource(f"{base}/files/missing.bin")], inputs, cache)
    with pytest.raises(InputError, match="checksum mismatch"):  # hashed as it arrived, still checked
        materialise_input("y", [InputSource(f"{base}/files/model.bin", sha256="0" * 64)], inputs, cache)


def test_http_cache_is_safe_under_concurrent_tasks(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    payload = os.urandom(2_000_000)
    write(root / "big.bin", payload)

    def task(i: int) -> bytes:
        cache = DownloadCache(tmp_path / "cache")  # separate instances share one directory
        materialise_input("big", [InputSource(f"{base}/big.bin")], tmp_path / f"work{i}/inputs", cache)
        return (tmp_path / f"work{i}/inputs/big/big.bin").read_bytes()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(task, range(8)))
    assert all(r == payload for r in results)
    assert _Handler.gets == 1
    assert not list((tmp_path / "cache").rglob(".vh-tmp-*"))
