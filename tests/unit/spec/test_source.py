"""read_source: only regular files, their size checked before a byte is read."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from valohai_airflow.spec.diagnostics import ValohaiSpecError
from valohai_airflow.spec.parse import parse_file
from valohai_airflow.spec.source import read_optional_source, read_source
from valohai_airflow.spec.yaml_loader import MAX_BYTES


@contextmanager
def _hang_guard(seconds: int = 20) -> Iterator[None]:
    """A generous bound that turns a blocked open or an endless read into a failure, not a hang."""

    def fail(*_: object) -> None:
        raise AssertionError(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _message(path: Path) -> str:
    with _hang_guard(), pytest.raises(ValohaiSpecError) as raised:
        read_source(path)
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.location.file == str(path)
    return diagnostic.message


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "valohai.yaml")
    assert _message(tmp_path / "valohai.yaml").startswith("is a FIFO (named pipe), not a regular file")


def test_a_link_to_dev_zero_is_refused_without_reading(tmp_path: Path) -> None:
    (tmp_path / "valohai.yaml").symlink_to("/dev/zero")
    assert _message(tmp_path / "valohai.yaml").startswith("is a character device, not a regular file")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "valohai.yaml").mkdir()
    assert _message(tmp_path / "valohai.yaml").startswith("is a directory, not a regular file")


def test_a_huge_sparse_file_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "valohai.yaml"
    with open(path, "wb") as handle:
        handle.truncate(8 * 1024**3)
    assert (
        _message(path)
        == "file is 8,589,934,592 bytes; valohai-airflow reads at most 10,485,760 bytes (10 MiB) of it"
    )


def test_the_cap_itself_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "valohai.yaml"
    path.write_bytes(b"#" * MAX_BYTES)
    assert len(read_source(path)) == MAX_BYTES
    path.write_bytes(b"#" * (MAX_BYTES + 1))
    assert _message(path).startswith("file is 10,485,761 bytes")


def test_a_missing_file_is_an_error_unless_it_is_optional(tmp_path: Path) -> None:
    assert _message(tmp_path / "valohai.yaml") == "cannot read: No such file or directory"
    assert read_optional_source(tmp_path / "valohai-airflow.yaml") is None
    os.mkfifo(tmp_path / "valohai-airflow.yaml")
    with _hang_guard(), pytest.raises(ValohaiSpecError, match="is a FIFO"):
        read_optional_source(tmp_path / "valohai-airflow.yaml")


def test_lint_reads_through_it_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "valohai.yaml")
    with _hang_guard():
        result = parse_file(tmp_path / "valohai.yaml")
    (error,) = result.diagnostics.errors
    assert "is a FIFO" in error.message and result.config is None
