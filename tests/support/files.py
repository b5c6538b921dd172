"""Small trees of test files, shared by the unit and integration tests of inputs and outputs."""

from __future__ import annotations

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
