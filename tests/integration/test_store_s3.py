"""The S3 store against a real SeaweedFS server (tests/support/seaweed.py)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from tests.support.files import rewritten
from tests.support.seaweed import S3Endpoint
from valohai_airflow.store import ArtifactStore, ObjectNotFoundError, StoreError, open_store
from valohai_airflow.store.s3 import S3Store, parse_s3_url

MiB = 1024 * 1024


def s3_store(endpoint: S3Endpoint, bucket: str, prefix: str = "root", **opts: object) -> S3Store:
    store = open_store(
        f"s3://{bucket}/{prefix}",
        endpoint_url=endpoint.endpoint_url,
        access_key=endpoint.access_key,
        secret_key=endpoint.secret_key,
        region_name=endpoint.region,
        **opts,
    )
    assert isinstance(store, S3Store)
    return store


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://b/some/prefix/") == ("b", "some/prefix")
    assert parse_s3_url("s3://b") == ("b", "")
    with pytest.raises(StoreError):
        parse_s3_url("s3:///nobucket")


def test_small_files_roundtrip(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    store = s3_store(s3_endpoint, s3_bucket)
    assert isinstance(store, ArtifactStore)
    src = tmp_path / "a.txt"
    src.write_bytes(b"hello")
    obj = store.put_file(src, "run/n/a.txt")
    assert obj.uri == f"s3://{s3_bucket}/root/run/n/a.txt" and obj.size == 5
    assert store.key_for_uri(obj.uri) == "run/n/a.txt"
    assert store.key_for_uri(f"s3://{s3_bucket}/other/x") is None
    assert store.get_file("run/n/a.txt", tmp_path / "back/a.txt").read_bytes() == b"hello"
    store.put_json({"k": [1, "x"]}, "run/n/manifest.json")
    assert store.read_json("run/n/manifest.json") == {"k": [1, "x"]}
    assert store.exists("run/n/a.txt") and not store.exists("run/n/b.txt")
    assert store.head("run/n/a.txt")["size"] == 5


def test_multipart_upload_and_download(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    store = s3_store(
        s3_endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB + 123))
    store.put_file(big, "big/big.bin")
    head = store.client.head_object(Bucket=s3_bucket, Key="root/big/big.bin")
    assert head["ContentLength"] == big.stat().st_size
    assert head["ETag"].strip('"').endswith("-2")  # the S3 signature of a 2-part multipart upload
    back = store.get_file("big/big.bin", tmp_path / "dl/big.bin")
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_get_tree_asks_no_head_per_object_and_keeps_bytes(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(
        s3_endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "big.bin").write_bytes(os.urandom(11 * MiB + 7))  # three ranged GETs
    (src / "sub/small.txt").write_bytes(b"small")
    store.put_tree(src, "t")
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    got = store.get_tree("t", tmp_path / "dl")
    assert sorted(p.relative_to(tmp_path / "dl").as_posix() for p in got) == ["big.bin", "sub/small.txt"]
    for rel in ("big.bin", "sub/small.txt"):
        assert (tmp_path / "dl" / rel).read_bytes() == (src / rel).read_bytes()
    assert "HeadObject" not in calls and calls.count("GetObject") == 4, calls
    assert sorted(p.name for p in (tmp_path / "dl").rglob("*")) == [
        "big.bin",
        "small.txt",
        "sub",
    ]  # no temp left


def test_get_file_hashed_hashes_the_parts_in_order_as_they_arrive(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(
        s3_endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    data = os.urandom(17 * MiB + 11)  # four ranged GETs, written in order whatever order they finish in
    (tmp_path / "big.bin").write_bytes(data)
    store.put_file(tmp_path / "big.bin", "k/big.bin")
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    digest = store.get_file_hashed("k/big.bin", tmp_path / "dl/big.bin", store.head("k/big.bin"))
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dl/big.bin").read_bytes() == data
    assert calls.count("HeadObject") == 1 and calls.count("GetObject") == 4, calls  # the head() we asked for
    with pytest.raises(ObjectNotFoundError):
        store.get_file_hashed("k/none.bin", tmp_path / "dl/none.bin")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["big.bin"]


def test_get_tree_of_an_object_deleted_after_listing_fails_and_leaves_no_file(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(s3_endpoint, s3_bucket)
    store.put_bytes(b"gone soon", "t/a.txt")

    def delete_first(**_: object) -> None:  # a before-call handler's return value would be the response
        store.client.delete_object(Bucket=s3_bucket, Key="root/t/a.txt")

    store.client.meta.events.register("before-call.s3.GetObject", delete_first)
    with pytest.raises(ObjectNotFoundError, match=r"root/t/a\.txt"):
        store.get_tree("t", tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []


def test_many_files_listing_and_tree(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    store = s3_store(s3_endpoint, s3_bucket, max_concurrency=16)
    src = tmp_path / "many"
    expected = {}
    for i in range(1100):  # more than one list_objects_v2 page (1000)
        rel = f"d{i % 7}/f{i:05d}.txt"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(str(i))
        expected[f"out/{rel}"] = len(str(i))
    started = time.monotonic()
    stored = store.put_tree(src, "out")
    elapsed = time.monotonic() - started
    assert len(stored) == 1100
    listed = store.list_prefix("out")
    assert {o.key: o.size for o in listed} == expected
    assert store.list_prefix("ou") == []
    assert elapsed < 60, elapsed
    subset = store.get_tree("out/d3", tmp_path / "d3")
    assert len(subset) == len([k for k in expected if k.startswith("out/d3/")])
    assert (tmp_path / "d3/f00003.txt").read_text() == "3"
    assert store.delete_prefix("out") == 1100
    assert store.list_prefix("out") == []


def test_missing_keys_give_project_errors(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    store = s3_store(s3_endpoint, s3_bucket)
    with pytest.raises(ObjectNotFoundError, match=f"s3://{s3_bucket}/root/nope.bin"):
        store.get_file("nope.bin", tmp_path / "nope.bin")
    assert not (tmp_path / "nope.bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".vh-tmp-")]
    with pytest.raises(ObjectNotFoundError):
        store.read_json("nope.json")
    with pytest.raises(ObjectNotFoundError):
        store.get_tree("nothing", tmp_path / "t")
    missing_bucket = s3_store(s3_endpoint, "no-such-bucket-vh")
    with pytest.raises(ObjectNotFoundError):
        missing_bucket.read_bytes("x")


def test_wrong_credentials_are_a_store_error(s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
    store = open_store(
        f"s3://{s3_bucket}",
        endpoint_url=s3_endpoint.endpoint_url,
        access_key="wrong",
        secret_key="wrong-secret",
        region_name=s3_endpoint.region,
    )
    with pytest.raises(StoreError, match="S3"):
        store.put_bytes(b"x", "k")


def test_tree_with_any_file_name_reads_back_by_key_and_uri(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    """Names a key cannot hold as they are go in percent-encoded; each object's URI parses back to
    its key (before: a `%` in a key made the URI name another key, a backslash was refused)."""
    from valohai_airflow.store.base import key_path, path_key

    names = ["back\\slash", "new\nline", "cr\rhere", "50%25", "d[1]*?", "tab\tx"]
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        (src / name).write_text(name)
    store = s3_store(s3_endpoint, s3_bucket)
    stored = store.put_tree(src, "out", names)
    assert sorted(key_path(o.key) for o in store.list_prefix("out")) == sorted(f"out/{n}" for n in names)
    for obj in stored:
        assert store.key_for_uri(obj.uri) == obj.key
        assert parse_s3_url(obj.uri)[1] == f"root/{obj.key}"
        name = key_path(obj.key).removeprefix("out/")
        assert obj.key == f"out/{path_key(name)}"
        assert store.read_bytes(obj.key) == name.encode()


def test_stage_outputs_hashes_the_bytes_uploaded_in_one_read(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    """Sizes around the 5 MiB multipart threshold and chunk (the manager reads a non-seekable
    source part by part): each recorded sha256 and size is hashlib's of the object read back."""
    from valohai_airflow.runtime.outputs import stage_outputs

    store = s3_store(
        s3_endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
    )
    sizes = (0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1, 10 * MiB, 11 * MiB + 3)
    blob = os.urandom(max(sizes))
    out = tmp_path / "outputs"
    for size in sizes:
        (out / f"d{size}").mkdir(parents=True)
        (out / f"d{size}/f.bin").write_bytes(blob[:size])
    collection, uris = stage_outputs(out, store, "run/node")
    assert [(f.path, f.size) for f in collection.files] == [
        (f"d{s}/f.bin", s) for s in sorted(sizes, key=str)
    ]
    for f in collection.files:
        back = store.get_file(f"run/node/{f.path}", tmp_path / "back" / f.path).read_bytes()
        assert (f.size, f.sha256) == (len(back), hashlib.sha256(back).hexdigest())
        assert uris[f.path] == f"s3://{s3_bucket}/root/run/node/{f.path}"
    assert not collection.skipped


def test_put_files_hashed_refuses_a_symlink_and_stores_the_rest(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    store = s3_store(s3_endpoint, s3_bucket)
    real = tmp_path / "real.bin"
    real.write_bytes(b"content")
    (tmp_path / "link.bin").symlink_to(real)
    done = store.put_files_hashed({"h/real.bin": real, "h/link.bin": tmp_path / "link.bin"})
    assert isinstance(done["h/link.bin"], OSError)  # O_NOFOLLOW: ELOOP, as LocalStore.put_hashed
    assert not store.exists("h/link.bin")
    obj, size, sha256 = done["h/real.bin"]  # type: ignore[misc]
    assert (obj.key, size, sha256) == ("h/real.bin", 7, hashlib.sha256(b"content").hexdigest())
    refused = open_store(
        f"s3://{s3_bucket}",
        endpoint_url=s3_endpoint.endpoint_url,
        access_key="wrong",
        secret_key="wrong-secret",
        region_name=s3_endpoint.region,
    )
    assert isinstance(refused, S3Store)
    with pytest.raises(StoreError, match="1 of 1 uploads failed"):  # an upload failure, not a skipped file
        refused.put_files_hashed({"k": real})


def test_an_output_rewritten_during_stage_out_is_recorded_as_uploaded(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    """A process still writing an output while it is staged (a real thread rewriting the file
    between two contents): the recorded sha256 is of the object S3 holds, whatever mix of the
    two it got. Hashing first and uploading in a second read recorded a sha256 the object did
    not have."""
    from valohai_airflow.runtime.outputs import stage_outputs

    store = s3_store(s3_endpoint, s3_bucket, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    out = tmp_path / "outputs"
    out.mkdir()
    contents = [os.urandom(12 * MiB), os.urandom(12 * MiB)]
    (out / "moving.bin").write_bytes(contents[0])
    with rewritten(out / "moving.bin", contents):
        collection, _uris = stage_outputs(out, store, "moving")
    [recorded] = collection.files
    back = store.get_file("moving/moving.bin", tmp_path / "back.bin").read_bytes()
    assert (recorded.size, recorded.sha256) == (len(back), hashlib.sha256(back).hexdigest())
