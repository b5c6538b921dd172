"""Issue 21's "done when" on the S3 store with the real scheduler: an Airflow of its own (api-server,
scheduler, dag-processor, triggerer: `airflow_deployment`) whose artefact store is a bucket on the
session's SeaweedFS (tests/support/seaweed.py), started for this module only and stopped after it.

The chain of test_assets.py (tests/e2e/asset_chain.py): `produce` publishes a dataset version, moves
a datum alias and creates a model version, all on S3; `consume`, scheduled on the dataset, starts by
itself and reads `dataset://…/latest` and `datum://<alias>`; the step DAG of `score`, scheduled on the
model, reads `model://…/latest`. The files and the catalogue records are checked in the bucket with
boto3, and nothing may be written to the local store.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.asset_chain import AssetChain, installed, publish_and_consume
from tests.e2e.conftest import AirflowServer, airflow_deployment
from tests.support import seaweed
from tests.support.seaweed import S3Endpoint, StoreBucket


@pytest.fixture(scope="module")
def s3_store(s3_endpoint: S3Endpoint) -> StoreBucket:
    store = StoreBucket(s3_endpoint, f"e2e-{uuid.uuid4().hex[:12]}")
    seaweed.make_bucket(s3_endpoint, store.bucket)
    return store


@pytest.fixture(scope="module")
def s3_airflow(artefacts_dir: Path, s3_store: StoreBucket) -> Iterator[AirflowServer]:
    """A second real Airflow, its store on S3 (no Git DAG bundle: this module needs only the dags folder)."""
    with airflow_deployment(artefacts_dir / "s3-store", store=s3_store, git_bundle=False) as server:
        yield server


def test_the_catalogue_on_s3_starts_the_dags_scheduled_on_it(
    s3_airflow: AirflowServer, s3_store: StoreBucket
) -> None:
    server, chain = s3_airflow, AssetChain(f"s3e2e{uuid.uuid4().hex[:8]}")
    with installed(server, chain):
        runs = publish_and_consume(server, report=False)  # the sha256 of what each read: checked there
        server.wait_until_idle()

    csv, model = runs.produced["a.csv"], runs.produced["model.bin"]
    assert csv["uri"].startswith(f"{s3_store.url}/") and model["uri"].startswith(f"{s3_store.url}/"), (
        runs.produced
    )
    read = {name: [f["uri"] for f in files] for name, files in runs.consumed["inputs"].items()}
    assert read == {"data": [csv["uri"]], "model": [model["uri"]], "exact": [csv["uri"]]}, read
    assert [f["uri"] for f in runs.scored["inputs"]["model"]] == [model["uri"]]
    for manifest in (runs.consumed, runs.scored):
        assert manifest["outputs"] and all(
            o["uri"].startswith(f"{s3_store.url}/") for o in manifest["outputs"]
        )

    # in the bucket: every output's bytes as hashed, and the three catalogue records naming them
    s3 = seaweed.client(s3_store.endpoint)
    for output in (csv, model, *runs.consumed["outputs"], *runs.scored["outputs"]):
        body = s3.get_object(Bucket=s3_store.bucket, Key=key(s3_store, output["uri"]))["Body"].read()
        assert hashlib.sha256(body).hexdigest() == output["sha256"], output
    catalogue = f"{s3_store.prefix}/catalogue"
    (version,) = records(s3, s3_store.bucket, f"{catalogue}/datasets/{chain.dataset}/versions/")
    assert (version["version"], [f["uri"] for f in version["files"]]) == ("v1", [csv["uri"]]), version
    (alias,) = records(s3, s3_store.bucket, f"{catalogue}/aliases/{chain.alias}/")
    assert alias["file"]["uri"] == model["uri"] and alias["file"]["sha256"] == model["sha256"], alias
    (model_version,) = records(s3, s3_store.bucket, f"{catalogue}/models/{chain.model}/")
    assert (model_version["version"], [f["uri"] for f in model_version["files"]]) == (1, [model["uri"]])

    local = [p for p in server.store.rglob("*") if p.is_file()] if server.store.exists() else []
    assert not local, f"files in the local store although the store is {s3_store.url}: {local}"


def key(store: StoreBucket, uri: str) -> str:
    bucket = f"s3://{store.bucket}/"
    assert uri.startswith(bucket), uri
    return uri[len(bucket) :]


def records(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every JSON object below `prefix` in the bucket, parsed."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed]
