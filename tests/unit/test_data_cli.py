"""`valohai-airflow data …` on a real LocalStore: existing files registered where they are (or copied),
aliases moved with history, dataset versions from folders, listing, refusals as messages (exit 1);
without a configured Airflow no Asset event is sent, and one line says so (tests/e2e/test_assets.py
sends them to a real Airflow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from valohai_airflow import data
from valohai_airflow.cli import main
from valohai_airflow.store import LocalStore
from valohai_airflow.store.catalogue import Catalogue


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_airflow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Airflow URL in the environment or a client.toml: where the events would go is unknown."""
    for key in ("URL", "TOKEN", "USERNAME", "PASSWORD"):
        monkeypatch.delenv(f"AIRFLOW_{key}", raising=False)
        monkeypatch.delenv(f"VALOHAI_AIRFLOW_{key}", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    (root / "images" / "sub").mkdir(parents=True)
    (root / "model-1.bin").write_bytes(b"one")
    (root / "model-2.bin").write_bytes(b"two")
    (root / "images" / "a.png").write_bytes(b"A")
    (root / "images" / "sub" / "b.png").write_bytes(b"B")
    return root


def test_alias_set_move_and_history(capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path) -> None:
    store = str(tmp_path / "store")
    code, out, _ = run(capsys, "data", "--store", store, "alias", "set", "best", str(files / "model-1.bin"))
    assert code == 0 and out.startswith(
        f"datum://best -> {(files / 'model-1.bin').as_uri()} (change 1, datum "
    )
    assert run(capsys, "data", "--store", store, "alias", "set", "best", str(files / "model-2.bin"))[0] == 0
    target = Catalogue(LocalStore(store)).resolve("datum://best")[0]
    assert (target.uri, target.size) == ((files / "model-2.bin").as_uri(), 3)
    assert target.sha256 == hashlib.sha256(b"two").hexdigest()  # a local file: hashed when registered
    code, out, _ = run(capsys, "data", "--store", store, "history", "datum://best")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "datum://best #1 -> " in lines[0] and "model-1.bin  (user " in lines[0]
    assert "datum://best #2 -> " in lines[1] and "model-2.bin" in lines[1]


def test_dataset_from_a_folder_with_an_alias_then_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    store = str(tmp_path / "store")
    code, out, _ = run(
        capsys,
        "data",
        "--store",
        store,
        "dataset",
        "create",
        "images/v1",
        str(files / "images"),
        "--alias",
        "prod",
    )
    assert code == 0
    assert out.splitlines()[0] == "dataset://images/v1: 2 file(s)"
    catalogue = Catalogue(LocalStore(store))
    assert sorted(f.name for f in catalogue.resolve("dataset://images/prod")) == ["a.png", "sub/b.png"]
    code, out, _ = run(
        capsys,
        "data", "--store", store, "dataset", "create", "images/v2", str(files / "model-1.bin"),
        "--from", "dataset://images/v1", "--exclude", "a.png",
    )  # fmt: skip
    assert code == 0
    assert sorted(f.name for f in catalogue.resolve("dataset://images/latest")) == [
        "model-1.bin",
        "sub/b.png",
    ]
    code, out, _ = run(capsys, "data", "--store", store, "list", "--format", "json")
    assert [(e["kind"], e["name"], e["current"], e["events"]) for e in json.loads(out)] == [
        ("dataset", "images", "v2", 3)
    ]
    code, out, _ = run(capsys, "data", "--store", store, "history", "images")
    assert [line.split("  ")[1] for line in out.splitlines()] == [
        "dataset://images #1 version v1 created",
        "dataset://images #2 alias prod -> v1",
        "dataset://images #3 version v2 created",
    ]


def test_refusals_are_messages(capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path) -> None:
    store = str(tmp_path / "store")
    assert (
        run(capsys, "data", "--store", store, "dataset", "create", "images/v1", str(files / "images"))[0] == 0
    )
    code, out, err = run(capsys, "data", "--store", store, "dataset", "create", "images/v1", str(files))
    assert (code, out) == (1, "")
    assert err.startswith("valohai-airflow data: dataset version dataset://images/v1 exists already"), err
    code, _, err = run(capsys, "data", "--store", store, "alias", "set", "x", str(files / "missing.bin"))
    assert code == 1 and "missing.bin: no such file or folder" in err
    code, _, err = run(capsys, "data", "--store", store, "history", "imagse")
    assert code == 1 and "did you mean images?" in err
    code, _, err = run(capsys, "data", "--store", store, "alias", "set", "x", str(files / "images"))
    assert code == 1 and "an alias names one file, this URL stands for 2" in err


def test_copy_and_a_kept_datum_id(capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path) -> None:
    store = tmp_path / "store"
    event = data.set_alias("best", str(files / "model-1.bin"), copy=True, store=str(store))
    assert event.file.uri.startswith((store / "catalogue" / "files").as_uri())
    (files / "model-1.bin").write_bytes(b"changed")  # the copy does not change with the original
    assert Path(event.file.uri.removeprefix("file://")).read_bytes() == b"one"
    assert event.file.sha256 == hashlib.sha256(b"one").hexdigest()
    valohai_id = "019711fb-eb24-fec3-001e-4da65d1bf469"
    code, out, _ = run(
        capsys, "data", "--store", str(store), "datum", "add", str(files / "model-2.bin"), "--id", valohai_id
    )
    assert code == 0 and out.startswith(f"datum://{valohai_id} -> ")
    assert Catalogue(LocalStore(store)).resolve(f"datum://{valohai_id}")[0].size == 3


def test_the_store_comes_from_airflows_settings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__VALOHAI__STORE_URL", str(tmp_path / "configured"))
    assert run(capsys, "data", "alias", "set", "best", str(files / "model-1.bin"))[0] == 0
    assert Catalogue(LocalStore(tmp_path / "configured")).resolve("datum://best")[0].size == 3


def test_without_an_airflow_url_no_events_and_one_line_saying_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    store = str(tmp_path / "store")
    code, out, _ = run(capsys, "data", "--store", store, "alias", "set", "best", str(files / "model-1.bin"))
    assert code == 0
    assert out.splitlines()[-1].startswith("no Asset events sent: no Airflow URL configured (set AIRFLOW_URL")
    code, out, _ = run(
        capsys,
        "data",
        "--store",
        store,
        "dataset",
        "create",
        "images/v1",
        str(files / "images"),
        "--no-events",
    )
    assert code == 0 and "Asset event" not in out
    assert Catalogue(LocalStore(store)).resolve("dataset://images/v1")  # the change stands
    created = data.create_dataset_version("images/v2", [str(files / "images")], store=store)
    assert created.version == "v2"
    (line,) = data.announce([created])
    assert line.startswith("no Asset events sent: no Airflow URL configured")
    assert data.announce([]) == []
