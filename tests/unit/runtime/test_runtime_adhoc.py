"""Ad hoc code snapshots (runtime/adhoc.py) on real files and a real LocalStore: determinism, the
file selection shared with the node's repository copy, the size refusal (nothing uploaded, nothing
triggered), the run conf, extraction checks and the step comparison. No Docker, no Airflow."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pytest

from valohai_airflow import cli
from valohai_airflow.plan.conf_keys import ADHOC_KEY
from valohai_airflow.runtime.adhoc import (
    AdhocCode,
    AdhocError,
    check_step,
    make_snapshot,
    send_working_tree,
    step_differences,
)
from valohai_airflow.runtime.repository import RepositoryRules
from valohai_airflow.store import LocalStore
from valohai_airflow.store.resolver import StoreResolver

YAML = "- step: {name: train, image: busybox, command: python train.py}\n"


def tree(root: Path, **files: str) -> Path:
    """`lib__util_py="..."` writes lib/util.py."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "valohai.yaml").write_text(YAML)
    for name, text in files.items():
        stem, _, suffix = name.rpartition("_")
        path = root / f"{stem.replace('__', '/')}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_same_tree_gives_the_same_id_and_one_byte_a_different_one(tmp_path: Path) -> None:
    one = tree(tmp_path / "one", train_py="print(1)\n", lib__util_py="x = 1\n")
    two = tree(tmp_path / "two", lib__util_py="x = 1\n", train_py="print(1)\n")  # other order, other mtimes
    os.utime(two / "train.py", (1, 1))
    (one / "run.sh").write_text("#!/bin/sh\n")
    (one / "run.sh").chmod(0o755)
    (two / "run.sh").write_text("#!/bin/sh\n")
    (two / "run.sh").chmod(0o755)
    first = make_snapshot(one, tmp_path / "1.tar.gz")
    assert make_snapshot(one, tmp_path / "1b.tar.gz").sha256 == first.sha256
    assert make_snapshot(two, tmp_path / "2.tar.gz").sha256 == first.sha256
    assert first.sha256 == hashlib.sha256((tmp_path / "1.tar.gz").read_bytes()).hexdigest()
    assert first.commit == f"~{first.sha256}" and first.key == f"adhoc/{first.sha256}.tar.gz"
    (two / "train.py").write_text("print(2)\n")
    assert make_snapshot(two, tmp_path / "3.tar.gz").sha256 != first.sha256
    (two / "train.py").write_text("print(1)\n")
    (two / "run.sh").chmod(0o644)  # a mode is content too
    assert make_snapshot(two, tmp_path / "4.tar.gz").sha256 != first.sha256
    with tarfile.open(tmp_path / "1.tar.gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["lib/util.py", "run.sh", "train.py", "valohai.yaml"]
    assert members["run.sh"].mode == 0o755 and {m.mtime for m in members.values()} == {0}


def test_it_holds_what_the_node_copy_holds(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", train_py="1", data__big_csv="2", keep__data__note_txt="3")
    (root / ".vhignore").write_text("/data/\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "link").symlink_to("train.py")
    snapshot = make_snapshot(root, tmp_path / "s.tar.gz")
    with tarfile.open(snapshot.tarball) as tar:
        names = sorted(tar.getnames())
        assert tar.getmember("link").issym() and tar.getmember("link").linkname == "train.py"
    assert names == sorted(relative for relative, _ in RepositoryRules.load(root).walk())
    assert names == [".vhignore", "keep/data/note.txt", "link", "train.py", "valohai.yaml"]

    (root / "outside").symlink_to("/etc/passwd")
    with pytest.raises(AdhocError, match=r"outside.*cannot be sent.*\.vhignore"):
        make_snapshot(root, tmp_path / "t.tar.gz")


def test_a_tree_above_the_limit_is_refused_with_its_biggest_parts_and_nothing_is_uploaded(
    tmp_path: Path,
) -> None:
    root = tree(tmp_path / "p", train_py="x" * 100, data__a_bin="y" * 3000, data__b_bin="z" * 2000)
    store = LocalStore(tmp_path / "store")
    with pytest.raises(AdhocError) as raised:
        send_working_tree(root, store, max_size=4096)
    message = str(raised.value)
    assert "the ad hoc code is 5164 B in 4 files, over the limit of 4 KiB" in message, message
    assert (
        "the biggest: data/ (5000 B), train.py (100 B), valohai.yaml (64 B); nothing was uploaded" in message
    ), message
    assert f"{root / '.vhignore'}" in message and "--adhoc-max-size" in message
    assert list(store.list_prefix("")) == []


def test_the_cli_refuses_a_large_tree_before_uploading_or_triggering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REST client is replaced by one that records being made: it must not be."""
    made: list[object] = []
    monkeypatch.setattr("valohai_airflow.run_cli.AirflowClient", lambda *a, **k: made.append(a))
    monkeypatch.setenv("AIRFLOW_URL", "http://airflow.invalid:8080")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tree(tmp_path / "p", data__big_bin="x" * 5000)
    store = tmp_path / "store"
    argv = ["run", str(root), "train", "--adhoc", "--store", str(store)]
    assert cli.main([*argv, "--adhoc-max-size", "4k"]) == 2
    err = capsys.readouterr().err
    assert "over the limit of 4 KiB" in err and "data/ (5000 B)" in err and ".vhignore" in err, err
    monkeypatch.setenv("VALOHAI_AIRFLOW_ADHOC_MAX_SIZE", "2k")  # the environment's limit
    assert cli.main(argv) == 2
    assert "over the limit of 2 KiB" in capsys.readouterr().err
    assert cli.main([*argv, "--adhoc-max-size", "lots"]) == 2
    assert "--adhoc-max-size 'lots': 'lots' is not a size" in capsys.readouterr().err
    assert made == [] and [p for p in store.rglob("*") if p.is_file()] == []


def test_the_run_conf_names_the_upload_once_per_content(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", train_py="print(1)\n")
    store = LocalStore(tmp_path / "store")
    sent = send_working_tree(root, store)
    assert sent.uploaded and sent.files == 2
    sha = sent.commit[1:]
    assert sent.conf == {
        ADHOC_KEY: {"uri": store.uri(f"adhoc/{sha}.tar.gz"), "sha256": sha, "commit": f"~{sha}"}
    }
    again = send_working_tree(root, store)
    assert not again.uploaded and again.conf == sent.conf
    code = AdhocCode.of(sent.conf)
    assert code is not None and code.commit == sent.commit
    assert AdhocCode.of({}) is None
    with pytest.raises(AdhocError, match=r"run conf 'valohai.adhoc': expected \{uri, sha256\}"):
        AdhocCode.of({ADHOC_KEY: {"uri": "x"}})

    dest = tmp_path / "repository"
    dest.mkdir()
    code.extract(StoreResolver(store), dest, tmp_path)
    assert (dest / "train.py").read_text() == "print(1)\n"
    assert not (tmp_path / "adhoc.tar.gz").exists()


def test_a_missing_or_corrupt_snapshot_is_named(tmp_path: Path) -> None:
    root = tree(tmp_path / "p", train_py="print(1)\n")
    store = LocalStore(tmp_path / "store")
    sent = send_working_tree(root, store)
    code = AdhocCode.of(sent.conf)
    assert code is not None
    stored = Path(store.root) / f"adhoc/{code.sha256}.tar.gz"
    stored.unlink()
    stored.write_bytes(b"not a tarball")
    with pytest.raises(AdhocError, match=rf"the ad hoc code {code.uri} is corrupt: its sha256 is"):
        code.extract(StoreResolver(store), tmp_path / "r", tmp_path)
    stored.unlink()
    with pytest.raises(AdhocError, match=rf"the ad hoc code {code.uri} cannot be read"):
        code.extract(StoreResolver(store), tmp_path / "r", tmp_path)


def test_a_tarball_with_paths_outside_is_not_extracted(tmp_path: Path) -> None:
    """Someone else's upload under a matching sha256: the `data` filter still refuses escapes."""
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        payload = tmp_path / "payload"
        payload.write_text("x")
        info.size = 1
        with payload.open("rb") as handle:
            tar.addfile(info, handle)
    store = LocalStore(tmp_path / "store")
    sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    uri = store.put_file(evil, f"adhoc/{sha}.tar.gz").uri
    dest = tmp_path / "work" / "repository"
    dest.mkdir(parents=True)
    with pytest.raises(AdhocError, match="cannot be extracted"):
        AdhocCode(uri, sha).extract(StoreResolver(store), dest, tmp_path)
    assert not (tmp_path / "work" / "escaped").exists()


def test_a_snapshot_outside_the_stores_adhoc_place_is_refused(tmp_path: Path) -> None:
    """A run conf names the URI: a valid tarball elsewhere on the worker (or another store) with its
    right sha256 is still refused, and nothing is extracted."""
    root = tree(tmp_path / "p", train_py="print(1)\n")
    elsewhere = LocalStore(tmp_path / "elsewhere")
    code = AdhocCode.of(send_working_tree(root, elsewhere).conf)
    assert code is not None
    dest = tmp_path / "repository"
    dest.mkdir()
    with pytest.raises(
        AdhocError, match=r"is not where the ad hoc code of sha256 .* lies in the artefact store"
    ):
        code.extract(StoreResolver(LocalStore(tmp_path / "store")), dest, tmp_path)
    assert list(dest.iterdir()) == []


def test_a_changed_step_definition_is_named(tmp_path: Path) -> None:
    deployed = tree(tmp_path / "deployed")
    mine = tree(tmp_path / "mine")
    assert step_differences(deployed, mine, "train") == []
    (mine / "valohai.yaml").write_text(
        "- step: {name: train, image: python:3.12, command: python train.py, parameters: [{name: lr}]}\n"
    )
    assert step_differences(deployed, mine, "train") == ["image", "parameters"]
    code = AdhocCode("file:///x", "0" * 64)
    with pytest.raises(AdhocError) as raised:
        check_step(deployed, mine, "fit", "train", code)
    message = str(raised.value)
    assert "node 'fit': the ad hoc code ~000000000000… defines step 'train' differently" in message
    assert "(image, parameters)" in message and "--local" in message and "deploy" in message
    (mine / "valohai.yaml").write_text("- step: {name: other, image: busybox, command: x}\n")
    assert step_differences(deployed, mine, "train") == [
        "the whole step (it is missing from one valohai.yaml)"
    ]


def test_adhoc_with_local_is_a_note_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--local` runs the working tree itself; the local run (Docker) is replaced by a recorder."""
    confs: list[dict[str, object]] = []
    monkeypatch.setattr(
        "valohai_airflow.run_cli._run_local", lambda source, dag, conf, args: confs.append(conf) or 0
    )
    root = tree(tmp_path / "p", train_py="print(1)\n")
    store = tmp_path / "store"
    assert cli.main(["run", str(root), "train", "--adhoc", "--local", "--store", str(store)]) == 0
    assert "--local runs the working tree already; --adhoc adds nothing" in capsys.readouterr().err
    assert confs == [{}] and not store.exists()
