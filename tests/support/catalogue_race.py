"""Publishers that race in processes of their own (tests/unit/store/test_store_catalogue.py): a
module of a package, so that the `spawn` start method can import them in a fresh interpreter. `fork`
is not used: a test session has threads (SeaweedFS, Airflow), and a forked child can hang on a lock
one of them held, or run the parent's exit handlers."""

from __future__ import annotations

from valohai_airflow.store import LocalStore
from valohai_airflow.store.catalogue import (
    Catalogue,
    DatumFile,
    Producer,
    VersionExistsError,
    output_datum_id,
)

PRODUCER = Producer(dag_id="proj__p", run_id="run1", node="train", execution_id="e1")


def datum(name: str, content: str = "x") -> DatumFile:
    return DatumFile(
        datum_id=output_datum_id("e1", name), name=name, uri=f"file:///store/{name}", size=len(content)
    )


def publish_version(root: str, index: int) -> str:
    try:
        Catalogue(LocalStore(root)).create_dataset_version("race", "v1", [datum(f"p{index}.csv")], PRODUCER)
    except VersionExistsError:
        return "refused"
    return "created"


def publish_model(root: str, index: int) -> int:
    return (
        Catalogue(LocalStore(root)).create_model_version("race", [datum(f"p{index}.pkl")], PRODUCER).version
    )
