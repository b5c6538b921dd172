from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from valohai_airflow.runtime.manifest import Manifest, ManifestFile, load_manifest, output_entries, to_xcom
from valohai_airflow.runtime.outputs import collect_outputs, stage_outputs, upload_outputs
from valohai_airflow.store import LocalStore, StoreError
from valohai_airflow.store.resolver import StoreResolver


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def test_collects_files_sizes_hashes_and_properties(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    write(out / "model.h5", b"weights")
    write(out / "model.h5.metadata.json", json.dumps({"valohai.tags": ["prod"], "accuracy": 0.9}))
    write(out / "results/a.csv", b"1,2\n")
    write(out / "orphan.metadata.json", "{}")  # no `orphan` file: an ordinary output
    write(
        out / "valohai.metadata.jsonl",
        json.dumps({"file": "results/a.csv", "metadata": {"valohai.alias": "latest-a"}})
        + "\n"
        + json.dumps({"file": "model.h5", "metadata": {"accuracy": 0.95}})
        + "\n",
    )
    c = collect_outputs(out)
    assert c.paths == ["model.h5", "orphan.metadata.json", "results/a.csv"]
    by_path = {f.path: f for f in c.files}
    assert by_path["model.h5"].size == 7
    assert by_path["model.h5"].sha256 == hashlib.sha256(b"weights").hexdigest()
    assert by_path["model.h5"].properties == {"valohai.tags": ["prod"], "accuracy": 0.95}  # .jsonl wins
    assert by_path["results/a.csv"].properties == {"valohai.alias": "latest-a"}
    assert c.problems == [] and c.skipped == []


def test_property_problems_are_reported_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    write(out / "a.bin", b"a")
    write(out / "a.bin.metadata.json", "[1, 2]")
    write(out / "valohai.metadata.jsonl", 'not json\n{"file": "missing.bin", "metadata": {}}\n{"x": 1}\n')
    c = collect_outputs(out)
    assert c.paths == ["a.bin"]
    assert c.files[0].properties == {}
    assert len(c.problems) == 4
    assert any("missing.bin" in p for p in c.problems)


def test_symlinks_out_of_the_outputs_dir_are_never_followed(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    write(out / "real.txt", b"real")
    secret = write(tmp_path / "secret.txt", b"secret")
    (out / "leak.txt").symlink_to(secret)
    (out / "alias.txt").symlink_to(out / "real.txt")
    (out / "dangling").symlink_to(tmp_path / "nowhere")
    (out / "dirlink").symlink_to(tmp_path)
    (out / "sub").mkdir()
    (out / "sub/up.txt").symlink_to("../../secret.txt")
    c = collect_outputs(out)
    assert c.paths == ["alias.txt", "real.txt"]
    reasons = {s.path: s.reason for s in c.skipped}
    assert set(reasons) == {"leak.txt", "dangling", "dirlink", "sub/up.txt"}
    assert "outside" in reasons["leak.txt"] and "outside" in reasons["sub/up.txt"]

    store = LocalStore(tmp_path / "store")
    uris = upload_outputs(c, store, "p")
    assert sorted(uris) == ["alias.txt", "real.txt"]
    assert (tmp_path / "store/p/alias.txt").read_bytes() == b"real"
    assert not (tmp_path / "store/p/leak.txt").exists()


def test_collects_after_failure_and_missing_dir(tmp_path: Path) -> None:
    assert collect_outputs(tmp_path / "absent").files == []
    out = tmp_path / "outputs"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", f"open({str(out / 'partial.log')!r}, 'w').write('half'); raise SystemExit(3)"],
        check=False,
    )
    assert proc.returncode == 3
    c = collect_outputs(out)
    assert c.paths == ["partial.log"] and c.files[0].size == 4


def test_valohai_utils_output_properties_are_read(tmp_path: Path) -> None:
    """The real valohai-utils output_properties() writes the .jsonl we read."""
    out = tmp_path / "outputs"
    out.mkdir()
    code = (
        "import valohai\n"
        "with open(valohai.outputs().path('m/model.bin'), 'wb') as f: f.write(b'm')\n"
        "with valohai.output_properties() as props:\n"
        "    props.add(file='m/model.bin', properties={'valohai.tags': ['t'], 'k': 1})\n"
        "    props.add_to_dataset(file='m/model.bin', dataset_version='dataset://ds/v1')\n"
    )
    env = {**os.environ, "VH_OUTPUTS_DIR": str(out)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, capture_output=True)
    c = collect_outputs(out)
    assert c.paths == ["m/model.bin"]
    assert c.files[0].properties == {
        "valohai.tags": ["t"],
        "k": 1,
        "valohai.dataset-versions": ["dataset://ds/v1"],
    }


def make_manifest(n_outputs: int) -> Manifest:
    return Manifest(
        execution_id="e1",
        node="train",
        step="Train model",
        image="python:3.12",
        command=["python train.py --epochs=3"],
        exit_code=0,
        status="succeeded",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        parameters={"epochs": 3, "lr": 0.1},
        inputs={"data": [ManifestFile(path="d.csv", uri="file:///x/d.csv", size=3, sha256="ab")]},
        outputs=[
            ManifestFile(path=f"o/{i}.txt", uri=f"file:///s/o/{i}.txt", size=i) for i in range(n_outputs)
        ],
        metadata={"acc": 0.9},
        metadata_uri="file:///s/metadata.jsonl",
    )


def test_small_manifest_roundtrips_inline(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    m = make_manifest(3)
    xcom = to_xcom(m, store, "p/manifest-files.json")
    assert json.loads(json.dumps(xcom)) == xcom  # plain JSON
    assert xcom["files_uri"] is None and len(xcom["outputs"]) == 3
    assert load_manifest(xcom) == m
    assert store.list_prefix() == []


def test_large_manifest_keeps_files_in_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    m = make_manifest(5000)
    xcom = to_xcom(m, store, "p/manifest-files.json")
    assert xcom["outputs"] == [] and xcom["inputs"] == {}
    assert xcom["output_count"] == 5000 and xcom["input_counts"] == {"data": 1}
    assert xcom["files_uri"] == store.uri("p/manifest-files.json")
    assert len(json.dumps(xcom)) < 4096
    full = load_manifest(xcom, StoreResolver(store))
    assert full.outputs == m.outputs and full.inputs == m.inputs and not full.is_large
    assert load_manifest(xcom) == full  # without a store: opened from the URI
    (tmp_path / "store/p/manifest-files.json").write_text(json.dumps({"outputs": [], "inputs": {}}))
    with pytest.raises(StoreError, match="lists 0 outputs"):
        load_manifest(xcom, StoreResolver(store))


def test_a_name_that_is_not_utf8_is_skipped_with_a_reason(tmp_path: Path) -> None:
    """JSON cannot hold it: before, the node stored it and then failed pushing its XCom with a raw
    UnicodeEncodeError."""
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "fine.txt").write_text("ok")
    with open(os.path.join(os.fsencode(out), b"bad\xffname"), "wb") as fh:
        fh.write(b"x")
    collection, uris = stage_outputs(out, LocalStore(tmp_path / "store"), "p")
    assert collection.paths == ["fine.txt"]
    (skipped,) = collection.skipped
    assert skipped.path == "bad\\xffname" and "not UTF-8" in skipped.reason
    manifest = Manifest(
        execution_id="e",
        node="n",
        step="s",
        image="i",
        outputs=output_entries(collection, uris),
        skipped_outputs=[s.path for s in collection.skipped],
    )
    manifest.model_dump_json().encode("utf-8")  # what XCom sends
