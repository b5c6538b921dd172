"""atomic.replacing: the destination is the old file or the new one, and no temp file is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from valohai_airflow import atomic


def test_the_temp_file_replaces_the_destination_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "folder" / "file.bin"
    with atomic.replacing(dest) as temp:
        assert temp.parent == dest.parent and temp.name.startswith(atomic.TEMP_PREFIX)
        temp.write_bytes(b"new")
        assert not dest.exists()  # nobody sees it before the end
    assert dest.read_bytes() == b"new"
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path, error: BaseException) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    with pytest.raises(type(error)), atomic.replacing(dest) as temp:
        temp.write_bytes(b"half")
        raise error
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_write_bytes(tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"old")
    atomic.write_bytes(dest, b"new")
    assert dest.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
