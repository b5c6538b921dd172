"""The data catalogue on a real LocalStore: aliases (moved, history kept), dataset versions (string
and object forms, latest, dataset aliases, refused when they exist), model versions, references
that do not resolve (with a did-you-mean), and concurrent publishers (threads and processes)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.catalogue_race import PRODUCER, datum, publish_model, publish_version
from valohai_airflow.store import LocalStore, ObjectExistsError
from valohai_airflow.store.catalogue import (
    AliasEvent,
    Catalogue,
    CatalogueError,
    DatasetEvent,
    DatumFile,
    Producer,
    UnknownReferenceError,
    VersionExistsError,
    output_datum_id,
    split_reference,
)


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    return Catalogue(LocalStore(tmp_path / "store"))


def test_create_bytes_refuses_a_taken_key_and_keeps_the_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_bytes(b"first", "a/b.json")
    with pytest.raises(ObjectExistsError, match="already exists"):
        store.create_bytes(b"second", "a/b.json")
    assert store.read_bytes("a/b.json") == b"first"
    assert [o.key for o in store.list_prefix("a")] == ["a/b.json"]  # no temp file left behind


def test_an_alias_moves_and_keeps_its_history(catalogue: Catalogue) -> None:
    first, second = datum("model-1.bin"), datum("model-2.bin")
    catalogue.set_alias("production-model", first, PRODUCER)
    assert catalogue.resolve("datum://production-model") == [first]
    catalogue.set_alias("production-model", second, Producer.manual())
    assert catalogue.resolve("datum://production-model") == [second]
    history = catalogue.history("datum://production-model")
    assert [(e.seq, e.file.name) for e in history if isinstance(e, AliasEvent)] == [
        (1, "model-1.bin"),
        (2, "model-2.bin"),
    ]
    assert history[1].producer.kind == "manual"
    # the earlier file is still a datum by its id
    assert catalogue.resolve(f"datum://{first.datum_id}") == [first]


def test_dataset_versions_latest_base_exclude_and_aliases(catalogue: Catalogue) -> None:
    a, b, c = datum("a.csv"), datum("b.csv"), datum("c.csv")
    v1 = catalogue.create_dataset_version("images", "v1", [a, b], PRODUCER)
    assert v1.reference == "dataset://images/v1"
    assert catalogue.resolve("dataset://images/latest") == [a, b]
    b2 = DatumFile(datum_id=output_datum_id("e2", "b.csv"), name="b.csv", uri="file:///store/e2/b.csv")
    catalogue.create_dataset_version(
        "images",
        "v2",
        [b2, c],
        PRODUCER,
        base="dataset://images/v1",
        exclude=["a.csv"],
        targeting_aliases=["production"],
    )
    assert {f.name: f.uri for f in catalogue.resolve("dataset://images/latest")} == {
        "b.csv": "file:///store/e2/b.csv",  # a same-named new file replaces the base's
        "c.csv": "file:///store/c.csv",
    }
    assert catalogue.resolve("dataset://images/production") == catalogue.resolve("dataset://images/v2")
    assert catalogue.resolve("dataset://images/v1") == [a, b]  # immutable
    log = catalogue.dataset_history("images")
    assert [(e.version, e.alias) for e in log] == [("v1", None), ("v2", None), ("v2", "production")]
    assert catalogue.dataset_version("dataset://images/v2").based_on == "dataset://images/v1"


def test_an_existing_dataset_version_is_refused_naming_it(catalogue: Catalogue) -> None:
    catalogue.create_dataset_version("images", "v1", [datum("a.csv")], PRODUCER)
    with pytest.raises(VersionExistsError, match=r"dataset version dataset://images/v1 exists already"):
        catalogue.create_dataset_version("images", "v1", [datum("b.csv")], PRODUCER)
    with pytest.raises(VersionExistsError):
        catalogue.check_new_dataset_version("images", "v1")
    catalogue.check_new_dataset_version("images", "v2")
    assert [f.name for f in catalogue.resolve("dataset://images/v1")] == ["a.csv"]
    with pytest.raises(CatalogueError, match="'latest' is not a version name"):
        catalogue.create_dataset_version("images", "latest", [datum("a.csv")], PRODUCER)


def test_model_versions_count_up(catalogue: Catalogue) -> None:
    one = catalogue.create_model_version("churn", [datum("m1.pkl")], PRODUCER, tags=["candidate"])
    two = catalogue.create_model_version("churn", [datum("m2.pkl")], PRODUCER, release_note="better")
    assert (one.version, two.version) == (1, 2)
    assert catalogue.resolve("model://churn/latest")[0].name == "m2.pkl"
    assert catalogue.resolve("model://churn/v1")[0].name == "m1.pkl"
    assert catalogue.resolve("model://churn/1")[0].name == "m1.pkl"
    with pytest.raises(UnknownReferenceError, match=r"model://churn/3: model 'churn' has versions 1, 2"):
        catalogue.resolve("model://churn/3")


def test_unknown_references_say_what_there_is(catalogue: Catalogue) -> None:
    catalogue.set_alias("production-model", datum("m.bin"), PRODUCER)
    catalogue.create_dataset_version("images", "v1", [datum("a.csv")], PRODUCER)
    with pytest.raises(UnknownReferenceError, match="did you mean production-model"):
        catalogue.resolve("datum://production-modle")
    with pytest.raises(UnknownReferenceError, match=r"no dataset 'image' .*did you mean images"):
        catalogue.resolve("dataset://image/latest")
    with pytest.raises(UnknownReferenceError, match=r"has no version or alias 'v2' \(it has v1\)"):
        catalogue.resolve("dataset://images/v2")
    with pytest.raises(UnknownReferenceError, match="no model 'churn'"):
        catalogue.resolve("model://churn/latest")
    with pytest.raises(CatalogueError, match="expected dataset://<name>/<version or latest>"):
        split_reference("dataset://images")
    with pytest.raises(CatalogueError, match="is not a valid name"):
        catalogue.set_alias("a/b", datum("m.bin"), PRODUCER)


def test_listing_names_every_alias_dataset_and_model(catalogue: Catalogue) -> None:
    catalogue.set_alias("best", datum("m.bin"), PRODUCER)
    catalogue.set_alias("best", datum("n.bin"), PRODUCER)
    catalogue.create_dataset_version("images", "v1", [datum("a.csv")], PRODUCER)
    catalogue.create_model_version("churn", [datum("m.pkl")], PRODUCER)
    assert [(e.kind, e.name, e.current, e.events) for e in catalogue.entries()] == [
        ("alias", "best", "file:///store/n.bin", 2),
        ("dataset", "images", "v1", 1),
        ("model", "churn", "1", 1),
    ]


def test_pages_of_names_and_of_a_names_events_read_only_that_page(catalogue: Catalogue) -> None:
    for name in ("a", "b", "c"):
        catalogue.set_alias(name, datum(f"{name}.bin"), PRODUCER)
    for n in range(1, 4):
        catalogue.create_dataset_version(
            "images", f"v{n}", [datum(f"{n}.csv")], PRODUCER, targeting_aliases=["prod"]
        )
    catalogue.create_model_version("churn", [datum("m.pkl")], PRODUCER)
    page, total = catalogue.listing(offset=2, limit=2)
    assert total == 5 and [(e.kind, e.name) for e in page] == [("alias", "c"), ("dataset", "images")]
    assert catalogue.listing(offset=4, limit=2)[0][0].name == "churn"
    events, count = catalogue.recent("dataset", "images", offset=1, limit=2)
    assert count == 6  # three versions created, prod moved three times
    assert [(e.version, e.alias) for e in events if isinstance(e, DatasetEvent)] == [
        ("v3", None),
        ("v2", "prod"),
    ]
    moves, count = catalogue.recent("alias", "a")
    assert count == 1 and isinstance(moves[0], AliasEvent) and moves[0].file.name == "a.bin"
    assert catalogue.recent("model", "churn")[1] == 1
    first = catalogue.recent("alias", "a")[0][0]
    assert isinstance(first, AliasEvent)
    record = catalogue.datum_record(first.file.datum_id)
    assert record is not None and record.file == first.file and record.producer == PRODUCER
    assert catalogue.datum_record("no-such-id") is None
    assert catalogue.lookup("dataset://images/prod") == ("dataset://images/v3", [datum("3.csv")])
    assert catalogue.lookup("model://churn/latest")[0] == "model://churn/1"
    assert catalogue.lookup("datum://a")[0] == "datum://a"


def test_threads_moving_one_alias_at_once_lose_no_event(catalogue: Catalogue) -> None:
    def move(index: int) -> int:
        return catalogue.set_alias("shared", datum(f"f{index}.bin"), PRODUCER).seq

    with ThreadPoolExecutor(8) as pool:
        seqs = list(pool.map(move, range(24)))
    assert sorted(seqs) == list(range(1, 25))
    history = catalogue.alias_history("shared")
    assert sorted(e.file.name for e in history) == sorted(f"f{i}.bin" for i in range(24))
    assert catalogue.resolve("datum://shared")[0] == history[-1].file


def test_processes_publishing_one_version_at_once_create_it_once(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    with multiprocessing.get_context("spawn").Pool(4) as pool:  # see tests/support/catalogue_race.py
        outcomes = pool.starmap(publish_version, [(root, i) for i in range(8)])
        versions = pool.starmap(publish_model, [(root, i) for i in range(8)])
    assert sorted(outcomes) == ["created"] + ["refused"] * 7
    catalogue = Catalogue(LocalStore(root))
    assert len(catalogue.resolve("dataset://race/latest")) == 1
    assert [(e.version, e.alias) for e in catalogue.dataset_history("race")] == [("v1", None)]
    assert sorted(versions) == list(range(1, 9))
