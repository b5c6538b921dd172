"""Small trees of test files, shared by the unit and integration tests of inputs and outputs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def tree(inputs: Path, name: str) -> dict[str, bytes]:
    root = inputs / name
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Four files in two folders, one of them nested: what wildcard inputs select from."""
    d = tmp_path / "data"
    write(d / "a/x.csv", "ax")
    write(d / "a/y.txt", "ay")
    write(d / "b/x.csv", "bx")
    write(d / "b/deep/z.csv", "bz")
    return d


@contextmanager
def rewritten(path: Path, contents: list[bytes]) -> Iterator[None]:
    """While the block runs, a thread writes `contents` over `path` in turn, in place (a step still
    writing its output while the stage-out reads it)."""
    stop = threading.Event()

    def rewrite() -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            turn = 0
            while not stop.is_set():
                turn = (turn + 1) % len(contents)
                os.pwrite(fd, contents[turn], 0)
        finally:
            os.close(fd)

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()
