"""The data catalogue on a real S3 server (SeaweedFS, tests/support/seaweed.py): conditional creates
(`If-None-Match: *`), concurrent publishers, a refused existing version, a team's bucket registered
without copying (a prefix as a dataset version) then read by a node's input resolution, and the chain
of tests/e2e/test_assets.py with the S3 store through `dag.test()` and real containers: a pipeline
publishes a dataset version, an alias and a model version, a later pipeline reads
`dataset://…/latest`, `datum://<alias>` and `model://…/latest` (the same chain with the real
scheduler, the DAGs starting on Asset events: tests/e2e/test_assets_s3.py)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import run_pipeline
from tests.support.seaweed import S3Endpoint, StoreBucket
from valohai_airflow import data
from valohai_airflow.runtime.catalogue import input_sources
from valohai_airflow.runtime.inputs import DownloadCache, materialise_input
from valohai_airflow.store import ObjectExistsError
from valohai_airflow.store.catalogue import Catalogue, DatumFile, Producer, VersionExistsError
from valohai_airflow.store.resolver import StoreResolver


def resolver(endpoint: S3Endpoint, bucket: str) -> StoreResolver:
    options = {
        "endpoint_url": endpoint.endpoint_url,
        "access_key": endpoint.access_key,
        "secret_key": endpoint.secret_key,
        "region_name": endpoint.region,
    }
    return StoreResolver(f"s3://{bucket}/store", s3=options)


def datum(name: str) -> DatumFile:
    return DatumFile(datum_id=f"id-{name}", name=name, uri=f"s3://elsewhere/{name}")


def test_create_bytes_is_conditional_on_s3(s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
    store = resolver(s3_endpoint, s3_bucket).store
    store.create_bytes(b"first", "k.json")
    with pytest.raises(ObjectExistsError, match=rf"s3://{s3_bucket}/store/k.json"):
        store.create_bytes(b"second", "k.json")
    assert store.read_bytes("k.json") == b"first"

    def claim(index: int) -> bool:
        try:
            store.create_bytes(str(index).encode(), "race.json")
        except ObjectExistsError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(claim, range(16))) == [False] * 15 + [True]


def test_concurrent_publishers_on_s3(s3_endpoint: S3Endpoint, s3_bucket: str) -> None:
    catalogue = Catalogue(resolver(s3_endpoint, s3_bucket).store)
    producer = Producer(dag_id="d", run_id="r", node="n", execution_id="e")

    def move(index: int) -> int:
        return catalogue.set_alias("shared", datum(f"f{index}"), producer).seq

    def version(index: int) -> str:
        try:
            catalogue.create_dataset_version("race", "v1", [datum(f"p{index}")], producer)
        except VersionExistsError:
            return "refused"
        return "created"

    with ThreadPoolExecutor(6) as pool:
        seqs = list(pool.map(move, range(12)))
        outcomes = list(pool.map(version, range(6)))
    assert sorted(seqs) == list(range(1, 13))
    assert [e.seq for e in catalogue.alias_history("shared")] == list(range(1, 13))
    assert sorted(outcomes) == ["created"] + ["refused"] * 5
    assert [(e.version, e.alias) for e in catalogue.dataset_history("race")] == [("v1", None)]


def test_a_teams_bucket_registered_in_place_and_read_by_a_node(
    s3_endpoint: S3Endpoint, s3_bucket: str, tmp_path: Path
) -> None:
    stores = resolver(s3_endpoint, s3_bucket)
    team = stores.s3_bucket(s3_bucket)
    team.put_bytes(b"A", "team/images/a.png")
    team.put_bytes(b"BB", "team/images/sub/b.png")
    team.put_bytes(b"model", "team/model.bin")
    store = stores.store
    options = dict(stores.s3_options)
    version = data.create_dataset_version(
        "images/v1", [f"s3://{s3_bucket}/team/images/"], aliases=["prod"], store=store.url, s3=options
    )
    assert sorted((f.name, f.size, f.uri) for f in version.files) == [
        ("a.png", 1, f"s3://{s3_bucket}/team/images/a.png"),
        ("sub/b.png", 2, f"s3://{s3_bucket}/team/images/sub/b.png"),
    ]
    assert not store.list_prefix("catalogue/files")  # nothing copied
    copied = data.set_alias(
        "best", f"s3://{s3_bucket}/team/model.bin", copy=True, store=store.url, s3=options
    )
    assert copied.file.uri.startswith(f"s3://{s3_bucket}/store/catalogue/files/") and copied.file.sha256

    catalogue = Catalogue(store)
    sources = input_sources(["dataset://images/prod", "datum://best"], catalogue)
    done = materialise_input(
        "data",
        sources,
        tmp_path / "inputs",
        DownloadCache(tmp_path / "cache"),
        keep_directories="full",
        stores=stores,
    )
    assert {f.name: (f.size, f.datum_id is not None) for f in done.files} == {
        "a.png": (1, True),
        "sub/b.png": (2, True),
        "model.bin": (5, True),
    }
    assert (tmp_path / "inputs" / "data" / "sub" / "b.png").read_bytes() == b"BB"
    with pytest.raises(VersionExistsError):
        data.create_dataset_version(
            "images/v1", [f"s3://{s3_bucket}/team/model.bin"], store=store.url, s3=options
        )


PUBLISH = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command: |-
      cd /valohai/outputs
      echo a > a.csv
      printf '{{"valohai.dataset-versions": ["dataset://%s-images/v1"]}}' {{parameter-value:tag}} > a.csv.metadata.json
      echo weights > model.bin
      printf '{{"valohai.alias": "%s-best", "valohai.model-versions": ["model://%s-churn/"]}}' \\
        {{parameter-value:tag}} {{parameter-value:tag}} > model.bin.metadata.json
    parameters:
      - {{name: tag, type: string, default: x}}
- pipeline:
    name: p
    nodes:
      - {{name: make, type: execution, step: make}}
    edges: []
"""
CONSUME = f"""\
- step:
    name: use
    image: {BUSYBOX}
    command: cat /valohai/inputs/data/a.csv /valohai/inputs/alias/model.bin /valohai/inputs/model/model.bin > /valohai/outputs/seen.txt
    parameters:
      - {{name: tag, type: string, default: x}}
    inputs:
      - {{name: data, default: "dataset://{{parameter:tag}}-images/latest"}}
      - {{name: alias, default: "datum://{{parameter:tag}}-best"}}
      - {{name: model, default: "model://{{parameter:tag}}-churn/latest"}}
- pipeline:
    name: p
    nodes:
      - {{name: use, type: execution, step: use}}
    edges: []
"""


@pytest.mark.usefixtures("airflow_db", "docker_engine")
def test_a_pipeline_reads_what_an_earlier_one_published_on_the_s3_store(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: S3Endpoint, s3_bucket: str
) -> None:
    for key, value in StoreBucket(s3_endpoint, s3_bucket).environment().items():
        monkeypatch.setenv(key, value)
    tag = f"s{uuid.uuid4().hex[:8]}"
    published = run_pipeline(dags_folder, "s3-publish", PUBLISH, conf={"make.parameter.tag": tag})
    assert published.states == {"make": "success"}, published.errors("make")
    made = {o["path"]: o for o in published.xcom("make")["outputs"]}
    assert made["model.bin"]["uri"].startswith(f"s3://{s3_bucket}/store/")
    catalogue = Catalogue(resolver(s3_endpoint, s3_bucket).store)
    assert [f.uri for f in catalogue.resolve(f"dataset://{tag}-images/latest")] == [made["a.csv"]["uri"]]

    consumed = run_pipeline(dags_folder, "s3-consume", CONSUME, conf={"use.parameter.tag": tag})
    assert consumed.states == {"use": "success"}, consumed.errors("use")
    used = consumed.xcom("use")
    read = {
        name: [(f["path"], f["sha256"], f["uri"]) for f in files] for name, files in used["inputs"].items()
    }
    csv, model = made["a.csv"], made["model.bin"]
    assert read == {
        "data": [("a.csv", csv["sha256"], csv["uri"])],
        "alias": [("model.bin", model["sha256"], model["uri"])],
        "model": [("model.bin", model["sha256"], model["uri"])],
    }
    (seen,) = [o for o in used["outputs"] if o["path"] == "seen.txt"]
    assert seen["size"] == len(b"a\nweights\nweights\n")
