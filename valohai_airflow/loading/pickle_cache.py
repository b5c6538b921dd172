"""Pickles in a cache directory of our own, for what a fresh parser process must not compute again.

A DAG processor parses every file in a new process, so only the disk survives between parses. Files
are named by a hash of everything their content depends on; writes are atomic (atomic.py)
so a concurrent reader never sees half a pickle, and any failure only costs the work again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path

from valohai_airflow import atomic


def cache_path(cache_dir: str | os.PathLike[str], kind: str, *key: str) -> Path:
    digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()
    return Path(cache_dir) / f"{kind}-{digest}.pickle"


def read(path: Path) -> bytes | None:
    """The bytes `write` left at `path`; None if absent or unreadable."""
    try:
        with path.open("rb") as handle:
            return handle.read()
    except OSError:
        return None


def loads(data: bytes) -> object | None:
    """The value pickled in `data` (our own cache dir, written by this module); None if it is not one."""
    try:
        value: object = pickle.loads(data)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    return value


def load(path: Path) -> object | None:
    """What `store` wrote at `path`; None if absent or unreadable."""
    data = read(path)
    return loads(data) if data is not None else None


def dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def store(path: Path, value: object) -> None:
    try:
        data = dumps(value)
    except pickle.PicklingError:
        return
    write(path, data)


def write(path: Path, data: bytes) -> None:
    """Atomically: a concurrent reader sees the old file or the new one, never half of either."""
    with contextlib.suppress(OSError):  # a read-only cache dir must not break parsing
        atomic.write_bytes(path, data)
