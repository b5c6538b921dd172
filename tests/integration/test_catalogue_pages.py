"""Lineage in the web UI, over real runs: a producer pipeline's node (a real container, dag.test())
publishes an alias, a dataset version (with a dataset alias) and a model version; a consumer
pipeline's node reads `datum://`, `dataset://…/latest` and `model://…/latest`. The plugin's catalogue
pages, fetched from Airflow's own API app with its own auth, list them with sizes and sha256 and link
each record to the producer's Outputs page; that page says what each file became, and the consumer's
says where each input came from. A user who may not read Assets is refused, as is one not logged in.
The same pages read a store on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import html
import re
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BUSYBOX
from tests.integration.pipelines import STORE, run_pipeline
from tests.integration.test_node_pages import client, token  # noqa: F401  (shared fixtures)
from tests.support.seaweed import StoreBucket
from valohai_airflow.store import LocalStore
from valohai_airflow.store.catalogue import Catalogue, DatumFile, Producer

pytestmark = pytest.mark.usefixtures("airflow_db", "docker_engine")

PRODUCE = f"""\
- step:
    name: make
    image: {BUSYBOX}
    command: |-
      cd /valohai/outputs
      echo weights > model.bin
      printf '{{"valohai.alias": "%s", "valohai.model-versions": ["model://%s/"]}}' \\
        {{parameter-value:alias}} {{parameter-value:model}} > model.bin.metadata.json
      mkdir -p train && echo a > train/a.csv && echo bb > train/b.csv && echo note > notes.txt
      for f in a b; do
        printf '{{"file": "train/%s.csv", "metadata": {{"valohai.dataset-versions": [{{"uri": "dataset://%s/v1", "targeting_aliases": ["prod"]}}]}}}}\\n' \\
          $f {{parameter-value:dataset}}
      done > valohai.metadata.jsonl
    parameters:
      - {{name: alias, type: string}}
      - {{name: dataset, type: string}}
      - {{name: model, type: string}}
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
    command: cat /valohai/inputs/*/* > /valohai/outputs/read.txt
    parameters:
      - {{name: alias, type: string}}
      - {{name: dataset, type: string}}
      - {{name: model, type: string}}
    inputs:
      - {{name: best, default: "datum://{{parameter:alias}}"}}
      - {{name: train, default: "dataset://{{parameter:dataset}}/latest"}}
      - {{name: weights, default: "model://{{parameter:model}}/latest"}}
- pipeline:
    name: p
    nodes:
      - {{name: use, type: execution, step: use}}
    edges: []
"""


def _links(page: str) -> dict[str, str]:
    """Link text → href, unescaped."""
    return {
        html.unescape(re.sub(r"<[^>]+>", "", text)): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]*)"[^>]*>(.*?)</a>', page, re.S)
    }


def _rows(page: str, table: str) -> list[list[str]]:
    """The cells (tags stripped, unescaped) of the rows of the table with id `table`."""
    body = re.search(rf'<table[^>]*id="{table}"[^>]*>(.*?)</table>', page, re.S)
    assert body is not None, f"no table {table!r} in the page"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)[1:]
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)
        ]
        for r in rows
    ]


def test_catalogue_pages_and_node_pages_show_the_lineage_of_a_produced_and_consumed_dataset(
    dags_folder: Path,
    client: Any,  # noqa: F811
    token: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    tag = uuid.uuid4().hex[:8]  # the session's store is shared: names of our own
    names = {"alias": f"best-{tag}", "dataset": f"ds{tag}", "model": f"m{tag}"}
    conf = {f"{{node}}.parameter.{k}": v for k, v in names.items()}
    made = run_pipeline(
        dags_folder,
        "lineage-make",
        PRODUCE,
        conf={k.format(node="make"): v for k, v in conf.items()},
    )
    assert made.states == {"make": "success"}, made.errors("make")
    used = run_pipeline(
        dags_folder,
        "lineage-use",
        CONSUME,
        conf={k.format(node="use"): v for k, v in conf.items()},
    )
    assert used.states == {"use": "success"}, used.errors("use")
    catalogue = Catalogue(LocalStore(STORE))
    registered = DatumFile(datum_id=f"hand-{tag}", name="hand.txt", uri="file:///somewhere/hand.txt", size=3)
    catalogue.set_alias(names["alias"], registered, Producer.manual())  # moved by a person later

    producer_page = f"/valohai/nodes/lineage-make__p/{urllib.parse.quote(made.run.run_id, safe='')}/make/-1/1"
    consumer_page = f"/valohai/nodes/lineage-use__p/{urllib.parse.quote(used.run.run_id, safe='')}/use/-1/1"
    outputs = {o["path"]: o for o in made.xcom("make")["outputs"]}
    dataset_page = f"/valohai/catalogue/datasets/{names['dataset']}"
    pages = [
        "/valohai/catalogue",
        f"/valohai/catalogue/datums/{names['alias']}",
        dataset_page,
        dataset_page + "/v1",
        f"/valohai/catalogue/models/{names['model']}",
        f"/valohai/catalogue/models/{names['model']}/1",
    ]

    # auth: not logged in, and a user without a role (who may not read Assets), are refused
    nobody = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
    for page in pages:
        assert client.get(page).status_code == 401, page
        refused = client.get(page, headers={"Authorization": f"Bearer {nobody}"})
        assert refused.status_code == 403, (page, refused.text)

    client.cookies.set("_token", token)
    try:
        answers = {page: client.get(page) for page in pages}
        for page, answer in answers.items():
            assert answer.status_code == 200, (page, answer.text)
            assert "default-src 'none'" in answer.headers["content-security-policy"]

        monkeypatch.setattr("valohai_airflow.airflow.catalogue_page.PAGE_SIZE", 10_000)
        index = client.get("/valohai/catalogue").text
        listed = {row[1]: row for row in _rows(index, "entries")}
        assert listed[f"dataset://{names['dataset']}"][2] == "v1"
        assert listed[f"model://{names['model']}"][2] == "1"
        assert listed[f"datum://{names['alias']}"][2:4] == ["file:///somewhere/hand.txt", "2"]
        assert _links(index)[f"dataset://{names['dataset']}"] == dataset_page
        monkeypatch.setattr("valohai_airflow.airflow.catalogue_page.PAGE_SIZE", 1)  # one name a page
        first, second = client.get("/valohai/catalogue").text, client.get("/valohai/catalogue?page=1").text
        assert len(_rows(first, "entries")) == len(_rows(second, "entries")) == 1
        assert _rows(first, "entries") != _rows(second, "entries") and "?page=2" in second
        monkeypatch.undo()

        # the alias: the person's move above the node's, each with who made it
        alias = answers[pages[1]].text
        moves = _rows(alias, "moves")
        assert [m[0] for m in moves] == ["2", "1"]
        assert moves[0][1] == "hand.txt" and "registered by user" in moves[0][5]
        assert moves[1][1:4] == [
            "model.bin",
            f"{outputs['model.bin']['size']} B",
            outputs["model.bin"]["sha256"],
        ]
        producer_links = [h for t, h in _links(alias).items() if t.startswith("make (try 1)")]
        assert producer_links == [producer_page]

        # the dataset: its log (version created, alias prod moved), a version's files with size and sha256
        log = _rows(answers[dataset_page].text, "log")
        assert [(e[1], e[2], e[3]) for e in log] == [
            ("alias prod moved", "v1", ""),
            ("version created", "v1", "2"),
        ]
        version = answers[dataset_page + "/v1"].text
        files = {row[0]: row for row in _rows(version, "files")}
        assert set(files) == {"train/a.csv", "train/b.csv"}
        for name, row in files.items():
            assert row[1:3] == [f"{outputs[name]['size']} B", outputs[name]["sha256"]]
            assert row[4] == outputs[name]["uri"]
        assert producer_page in _links(version).values()
        latest = client.get(dataset_page + "/latest").text
        assert "names this version now" in latest and set(f[0] for f in _rows(latest, "files")) == set(files)

        model = _rows(answers[pages[4]].text, "versions")
        assert model[0][:2] == ["1", "1"] and model[0][4].startswith("make (try 1) in run")
        assert [r[0] for r in _rows(answers[pages[5]].text, "files")] == ["model.bin"]

        # unknown names: 404 with what there is
        missing = client.get(f"/valohai/catalogue/datasets/{names['dataset']}x")
        assert (
            missing.status_code == 404 and "did you mean" in missing.text and names["dataset"] in missing.text
        )
        assert client.get(dataset_page + "/v9").status_code == 404
        assert client.get("/valohai/catalogue/datums/no-such-alias-" + tag).status_code == 404

        # the producer's Outputs page: what each file became, linked to the catalogue
        produced = client.get(producer_page).text
        became = {row[0]: row[3] for row in _rows(produced, "output-files")}
        assert became["model.bin"] == f"datum://{names['alias']}, model://{names['model']}/1"
        assert became["train/a.csv"] == became["train/b.csv"] == f"dataset://{names['dataset']}/v1"
        assert became["notes.txt"] == ""
        links = _links(produced)
        assert links[f"dataset://{names['dataset']}/v1"] == dataset_page + "/v1"
        assert links[f"model://{names['model']}/1"] == pages[5]

        # the consumer's: where each input came from (the reference, the version it named, the datum)
        consumed = client.get(consumer_page).text
        sources = {(row[0], row[1]): row[4] for row in _rows(consumed, "input-files")}
        assert sources[("best", "model.bin")].startswith(f"datum://{names['alias']}, datum ")
        assert sources[("train", "a.csv")].startswith(
            f"dataset://{names['dataset']}/latest → dataset://{names['dataset']}/v1, datum "
        )
        assert sources[("weights", "model.bin")].startswith(
            f"model://{names['model']}/latest → model://{names['model']}/1, datum "
        )
        consumer_links = _links(consumed)
        assert consumer_links[f"dataset://{names['dataset']}/v1"] == dataset_page + "/v1"
        datum_ids = [t for t in consumer_links if re.fullmatch(r"[0-9a-f-]{36}", t)]
        assert len(datum_ids) == 3  # model.bin (read as the alias and as the model), a.csv, b.csv
        for datum_id in datum_ids:  # each datum's page: its file and the node try that made it
            datum = client.get(consumer_links[datum_id])
            assert datum.status_code == 200 and producer_page in _links(datum.text).values()
            ((name, size, sha256, shown_id, uri),) = _rows(datum.text, "files")
            expected = outputs[name]
            assert (shown_id, size, sha256, uri) == (
                datum_id,
                f"{expected['size']} B",
                expected["sha256"],
                expected["uri"],
            )
    finally:
        client.cookies.clear()


def test_catalogue_pages_read_the_s3_store(
    dags_folder: Path,
    client: Any,  # noqa: F811
    token: str,  # noqa: F811
    s3_endpoint: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same pages with the store on a real S3 server (SeaweedFS): the producer's records, read
    from the bucket's catalogue, with sha256 and the link to the producer."""
    url = f"s3://{s3_bucket}/runs"
    for key, value in StoreBucket(s3_endpoint, s3_bucket, "runs").environment().items():
        monkeypatch.setenv(key, value)
    tag = uuid.uuid4().hex[:8]
    names = {"alias": f"best-{tag}", "dataset": f"ds{tag}", "model": f"m{tag}"}
    made = run_pipeline(
        dags_folder,
        "lineage-s3",
        PRODUCE,
        conf={f"make.parameter.{k}": v for k, v in names.items()},
    )
    assert made.states == {"make": "success"}, made.errors("make")
    outputs = {o["path"]: o for o in made.xcom("make")["outputs"]}
    assert all(o["uri"].startswith(f"{url}/") for o in outputs.values())
    producer_page = f"/valohai/nodes/lineage-s3__p/{urllib.parse.quote(made.run.run_id, safe='')}/make/-1/1"
    client.cookies.set("_token", token)
    try:
        index = client.get("/valohai/catalogue")
        assert index.status_code == 200 and url in index.text, index.text
        version = client.get(f"/valohai/catalogue/datasets/{names['dataset']}/latest").text
        files = {row[0]: row for row in _rows(version, "files")}
        assert {name: row[2] for name, row in files.items()} == {
            name: outputs[name]["sha256"] for name in ("train/a.csv", "train/b.csv")
        }
        assert producer_page in _links(version).values()
        became = {row[0]: row[3] for row in _rows(client.get(producer_page).text, "output-files")}
        assert became["train/a.csv"] == f"dataset://{names['dataset']}/v1"
    finally:
        client.cookies.clear()
