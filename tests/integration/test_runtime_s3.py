"""The runtime's S3 paths against a real SeaweedFS (tests/support/seaweed.py): inputs with wildcards and
the download cache, and a manifest too large for XCom kept in the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.files import tree, write
from tests.support.seaweed import S3Endpoint
from valohai_airflow.runtime.inputs import DownloadCache, InputError, InputSource, materialise_input
from valohai_airflow.runtime.manifest import Manifest, load_manifest, output_entries, to_xcom
from valohai_airflow.runtime.outputs import collect_outputs, sha256_file, upload_outputs
from valohai_airflow.store import LocalStore, open_store
from valohai_airflow.store.resolver import StoreResolver


def test_s3_inputs_with_wildcards_and_cache(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path, data_dir: Path
) -> None:
    opts = {
        "endpoint_url": s3_endpoint.endpoint_url,
        "access_key": s3_endpoint.access_key,
        "secret_key": s3_endpoint.secret_key,
        "region_name": s3_endpoint.region,
    }
    store = open_store(f"s3://{s3_bucket}", **opts)
    store.put_tree(data_dir, "ds")
    stores = StoreResolver(s3=opts)
    cache = DownloadCache(tmp_path / "cache")
    inputs = tmp_path / "inputs"
    result = materialise_input(
        "s3",
        [InputSource(f"s3://{s3_bucket}/ds/*/x.csv")],
        inputs,
        cache,
        keep_directories="suffix",
        stores=stores,
    )
    assert tree(inputs, "s3") == {"a/x.csv": b"ax", "b/x.csv": b"bx"}
    assert [f.uri for f in result.files] == [f"s3://{s3_bucket}/ds/a/x.csv", f"s3://{s3_bucket}/ds/b/x.csv"]
    assert cache.downloads == 2
    materialise_input("again", [InputSource(f"s3://{s3_bucket}/ds/a/x.csv")], inputs, cache, stores=stores)
    assert cache.downloads == 2  # same ETag: served from the cache
    store.put_bytes(b"changed", "ds/a/x.csv")
    materialise_input("after", [InputSource(f"s3://{s3_bucket}/ds/a/x.csv")], inputs, cache, stores=stores)
    assert cache.downloads == 3 and tree(inputs, "after") == {"x.csv": b"changed"}
    full = materialise_input(
        "full",
        [InputSource(f"s3://{s3_bucket}/ds/**.csv")],
        inputs,
        cache,
        keep_directories="full",
        stores=stores,
    )
    assert sorted(f.name for f in full.files) == ["ds/a/x.csv", "ds/b/deep/z.csv", "ds/b/x.csv"]
    with pytest.raises(InputError, match="cannot download"):
        materialise_input(
            "gone", [InputSource(f"s3://{s3_bucket}/ds/nope.csv")], inputs, cache, stores=stores
        )
    empty = materialise_input(
        "none", [InputSource(f"s3://{s3_bucket}/ds/*.parquet")], inputs, cache, stores=stores
    )
    assert empty.files == [] and "matched no files" in empty.warnings[0]
    # hashed as the parts arrived: a manifest that expects other bytes still fails the input
    with pytest.raises(InputError, match="checksum mismatch"):
        materialise_input(
            "bad",
            [InputSource(f"s3://{s3_bucket}/ds/b/x.csv", sha256="0" * 64)],
            inputs,
            cache,
            stores=stores,
        )


def test_large_manifest_on_s3(s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path) -> None:
    opts = {
        "endpoint_url": s3_endpoint.endpoint_url,
        "access_key": s3_endpoint.access_key,
        "secret_key": s3_endpoint.secret_key,
        "region_name": s3_endpoint.region,
    }
    store = open_store(f"s3://{s3_bucket}/artefacts", **opts)
    out = tmp_path / "outputs"
    for i in range(30):
        write(out / f"shard/{i}.txt", str(i))
    c = collect_outputs(out)
    uris = upload_outputs(c, store, "dag/run/train/-1/1/outputs")
    assert uris["shard/7.txt"] == f"s3://{s3_bucket}/artefacts/dag/run/train/-1/1/outputs/shard/7.txt"
    m = Manifest(
        execution_id="e1",
        node="train",
        step="Train model",
        image="python:3.12",
        command=["python train.py"],
        exit_code=0,
        status="succeeded",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        outputs=output_entries(c, uris),
    )
    xcom = to_xcom(m, store, "dag/run/train/-1/1/manifest-files.json", max_inline_files=10)
    assert xcom["files_uri"].startswith(f"s3://{s3_bucket}/")
    full = load_manifest(xcom, StoreResolver(s3=opts))  # outside any configured store: its parent
    assert [f.path for f in full.outputs] == c.paths
    got = store.get_file("dag/run/train/-1/1/outputs/shard/7.txt", tmp_path / "7.txt")
    assert sha256_file(got) == full.outputs[[f.path for f in full.outputs].index("shard/7.txt")].sha256


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_retry_removes_only_what_unfinished_tries_left(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Try 1 was killed mid-upload (outputs, nothing else); try 2 finished (its manifest); try 3
    was stored by a version without manifests (its series); try 4 starts: only try 1 goes."""
    from valohai_airflow.runtime.ids import ExecutionKey
    from valohai_airflow.runtime.manifest import discard_unfinished_tries, store_manifest, stored_manifest

    if kind == "s3":
        endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        store = open_store(
            f"s3://{bucket}/root",
            endpoint_url=endpoint.endpoint_url,
            access_key=endpoint.access_key,
            secret_key=endpoint.secret_key,
            region_name=endpoint.region,
        )
    else:
        store = LocalStore(tmp_path / "store")
    tries = [ExecutionKey("d", "r", "n", -1, number) for number in (1, 2, 3, 4)]
    for key in tries[:3]:
        store.put_bytes(b"x", f"{key.prefix}/outputs/a.bin")
    store_manifest({"execution_id": tries[1].execution_id}, store, tries[1])
    store.put_bytes(b"{}", f"{tries[2].prefix}/metadata.jsonl")
    assert discard_unfinished_tries(store, tries[3]) == [1]
    assert store.list_prefix(tries[0].prefix) == []
    assert stored_manifest(store, tries[1]) == {"execution_id": tries[1].execution_id}
    assert store.exists(f"{tries[1].prefix}/outputs/a.bin") and store.exists(
        f"{tries[2].prefix}/outputs/a.bin"
    )
    assert discard_unfinished_tries(store, tries[3]) == []  # nothing left to remove
