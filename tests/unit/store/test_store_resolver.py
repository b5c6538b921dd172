"""The store resolver: the configured store and any other store URL, opened with one set of S3
options that reach S3 URLs only. Against SeaweedFS: tests/integration/test_runtime_s3.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from valohai_airflow.store import LocalStore, StoreError
from valohai_airflow.store.resolver import StoreResolver
from valohai_airflow.store.s3 import S3Store

S3 = {"endpoint_url": "http://127.0.0.1:9", "access_key": "k", "secret_key": "s", "region_name": "us-east-1"}


def test_a_local_store_takes_no_s3_options(tmp_path: Path) -> None:
    # [valohai] s3_endpoint_url set for s3:// inputs, the store on local disk: the options were
    # passed to LocalStore too, which refused them (TypeError) before the resolver
    stores = StoreResolver(tmp_path / "store", s3=S3)
    assert isinstance(stores.store, LocalStore) and stores.store.local_root == tmp_path / "store"
    assert stores.store is stores.store  # opened once
    assert isinstance(stores.open((tmp_path / "other").as_uri()), LocalStore)


def test_s3_urls_get_the_options(tmp_path: Path) -> None:
    stores = StoreResolver("s3://bucket/prefix", s3=S3)
    store = stores.store
    assert isinstance(store, S3Store) and store.url == "s3://bucket/prefix" and store.local_root is None
    assert store.client.meta.endpoint_url == S3["endpoint_url"]  # boto3 makes no request until asked
    bucket = stores.s3_bucket("inputs")
    assert bucket.url == "s3://inputs" and bucket.client.meta.endpoint_url == S3["endpoint_url"]


def test_objects_by_url_inside_and_outside_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    inside = store.put_json({"where": "inside"}, "a/b.json")
    outside = LocalStore(tmp_path / "elsewhere").put_json({"where": "outside"}, "c d.json")
    stores = StoreResolver(store, s3=S3)
    assert stores.locate(inside.uri) == (store, "a/b.json")
    assert stores.read_json(inside.uri) == {"where": "inside"}
    assert stores.read_json(outside.uri) == {"where": "outside"}  # its parent opened as a store
    copy = stores.get_file(outside.uri, tmp_path / "copy.json")
    assert json.loads(copy.read_text()) == {"where": "outside"}
    assert StoreResolver().read_json(inside.uri) == {"where": "inside"}  # no configured store
    with pytest.raises(StoreError, match="no artefact store configured"):
        _ = StoreResolver().store
    with pytest.raises(StoreError, match="not an object URL"):
        stores.read_json("nothing")
