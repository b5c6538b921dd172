"""Staging's fast paths (stage_outputs into a LocalStore, sealed stage-in, sealed cache hits) give
what the slow paths gave, and a corrupted stored or cached file is still caught: real files, really
corrupted on disk."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from valohai_airflow.runtime.inputs import DownloadCache, InputError, InputSource, materialise_input
from valohai_airflow.runtime.outputs import collect_outputs, stage_outputs, upload_outputs
from valohai_airflow.store import LocalStore
from valohai_airflow.store.files import RACY_NS, sealed_sha256


def write(path: Path, data: bytes, *, age_ns: int = 10 * RACY_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    past = time.time_ns() - age_ns
    os.utime(path, ns=(past, past))
    return path


def corrupt_in_place(path: Path) -> None:
    with open(path, "r+b") as fh:
        first = fh.read(1)
        fh.seek(0)
        fh.write(bytes([first[0] ^ 0xFF]))


def is_sealed(path: Path) -> bool:
    with open(path, "rb") as fh:
        return sealed_sha256(fh.fileno()) is not None


def outputs(root: Path) -> Path:
    write(root / "model.bin", os.urandom(300_000))
    write(root / "results/a.csv", b"1,2\n")
    write(root / "results/a.csv.metadata.json", b'{"k": 1}')
    write(root.parent / "secret.txt", b"secret")
    (root / "leak.txt").symlink_to(root.parent / "secret.txt")
    (root / "alias.bin").symlink_to("model.bin")
    return root


@pytest.mark.parametrize("link", [True, False])
def test_stage_outputs_gives_what_collect_and_upload_give(tmp_path: Path, link: bool) -> None:
    out = outputs(tmp_path / "outputs")
    slow = collect_outputs(out)
    slow_uris = upload_outputs(slow, LocalStore(tmp_path / "slow", link=link), "p")
    fast, fast_uris = stage_outputs(out, LocalStore(tmp_path / "fast", link=link), "p")
    assert fast.files == slow.files and fast.skipped == slow.skipped and fast.problems == slow.problems
    assert {k: v.replace("/fast/", "/slow/") for k, v in fast_uris.items()} == slow_uris
    assert sorted(fast_uris) == ["alias.bin", "model.bin", "results/a.csv"]  # leak.txt: never followed
    assert not (tmp_path / "fast/p/leak.txt").exists()
    for f in fast.files:
        stored = tmp_path / "fast/p" / f.path
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == f.sha256 and is_sealed(stored)


@pytest.mark.parametrize("link", [True, False])
def test_a_corrupted_sealed_store_object_fails_the_input(tmp_path: Path, link: bool) -> None:
    out = tmp_path / "outputs"
    write(out / "model.bin", os.urandom(200_000))
    collection, uris = stage_outputs(out, LocalStore(tmp_path / "store", link=link), "p")
    (model,) = collection.files
    stored = tmp_path / "store/p/model.bin"
    source = InputSource(uris["model.bin"], sha256=model.sha256, size=model.size, path_hint="model.bin")
    cache = DownloadCache(tmp_path / "cache")
    good = materialise_input("m", [source], tmp_path / "in1", cache, keep_directories="full")
    assert [f.sha256 for f in good.files] == [model.sha256]  # from the seal
    assert (tmp_path / "in1/m/model.bin").read_bytes() == stored.read_bytes()

    corrupt_in_place(stored)  # same size; the write gives it a new mtime, so the seal no longer holds
    with pytest.raises(InputError, match="checksum mismatch"):
        materialise_input("m", [source], tmp_path / "in2", cache, keep_directories="full")
    assert not (tmp_path / "in2/m/model.bin").exists()


def test_an_unsealed_local_input_is_hashed_as_before(tmp_path: Path) -> None:
    plain = write(tmp_path / "data.bin", b"plain bytes", age_ns=0)
    cache = DownloadCache(tmp_path / "cache")
    got = materialise_input("d", [InputSource(str(plain))], tmp_path / "inputs", cache)
    assert [f.sha256 for f in got.files] == [hashlib.sha256(b"plain bytes").hexdigest()]
    with pytest.raises(InputError, match="checksum mismatch"):
        materialise_input("d", [InputSource(str(plain), sha256="0" * 64)], tmp_path / "other", cache)


def test_a_corrupted_sealed_cache_blob_is_fetched_again(tmp_path: Path) -> None:
    payload = os.urandom(50_000)
    digest = hashlib.sha256(payload).hexdigest()
    cache = DownloadCache(tmp_path / "cache")

    def fill(path: Path) -> None:
        path.write_bytes(payload)

    def fetch(dest: str) -> str:
        return cache.fetch("https://example.invalid/x.bin", {"etag": "v1"}, fill, tmp_path / dest, digest)

    assert fetch("a") == digest and cache.downloads == 1
    (blob,) = (tmp_path / "cache").glob("*/blob")
    assert is_sealed(blob)
    assert fetch("b") == digest and cache.downloads == 1  # a hit, from the seal
    corrupt_in_place(blob)
    assert fetch("c") == digest and cache.downloads == 2  # the changed blob is not trusted
    assert (tmp_path / "c").read_bytes() == payload and blob.read_bytes() == payload
