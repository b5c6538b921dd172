"""The plans of one dags folder in one file, trusted while each project's files keep their stat.

A DAG processor parses the loader file in a fresh process every 30 s. With only one pickle per
plan, a warm parse read and hashed every valohai.yaml, probed for its sidecar and opened its plan
(65 projects: about 4 ms of a 50 ms parse). The index keeps, per valohai.yaml, the stat of it
and of its sidecar beside the plan's pickled bytes, so an unchanged project costs two stats: Python
trusts a source file's mtime and size for its bytecode in the same way. The stat holds device,
inode, size, mtime and ctime to the nanosecond, and is trusted only for a file last modified
RACY_NS or more before it was taken (git's racy-clean rule): a file written twice within one clock
tick with the same size is never mistaken for its older self. Plans over INLINE_LIMIT stay in their
own pickle (the entry gives their content hash), so a worker reading the index unpickles only the
project it runs. An entry also carries what other layers derive from the plan alone and keep
between parses (the task docs: `attachment`), so a warm parse opens one cache file, not one per project.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from valohai_airflow.loading import pickle_cache

RACY_NS = 2_000_000_000
INLINE_LIMIT = 256 * 1024

FileStat = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
Stamp = tuple[FileStat, FileStat | None]  # valohai.yaml, and the sidecar (None: there is none)
# valohai.yaml path → (stamp, project name, content hash, pickled plan or None when kept apart,
# attachments: key → pickled value, dropped with the entry when the project changes)
Entry = tuple[Stamp, str, str, bytes | None, dict[str, bytes]]


class FolderIndex:
    def __init__(self, path: Path) -> None:
        self._path = path
        loaded = pickle_cache.load(path)
        self._entries: dict[str, Entry] = loaded if isinstance(loaded, dict) else {}
        self._seen: set[str] = set()
        self._changed = False

    def lookup(self, valohai_yaml: str, sidecar: str, name: str) -> tuple[Stamp | None, Entry | None]:
        """The project's stamp (None: too fresh or unreadable to trust) and its entry if the stamp
        and name still match. Stats first, before anyone reads the files."""
        self._seen.add(valohai_yaml)
        stamp = _stamp(valohai_yaml, sidecar)
        entry = self._entries.get(valohai_yaml)
        if stamp is None or entry is None or entry[0] != stamp or entry[1] != name:
            return stamp, None
        return stamp, entry

    def put(self, valohai_yaml: str, stamp: Stamp, name: str, content_hash: str, pickled: bytes) -> bool:
        """Index the project's plan; True when its bytes are kept here (False: in its own pickle)."""
        inline = len(pickled) <= INLINE_LIMIT
        self._entries[valohai_yaml] = (stamp, name, content_hash, pickled if inline else None, {})
        self._changed = True
        return inline

    def attachment(self, valohai_yaml: str, key: str) -> bytes | None:
        """What `attach` kept under `key` beside the project's current plan; None if nothing."""
        entry = self._entries.get(valohai_yaml)
        return entry[4].get(key) if entry is not None else None

    def attach(self, valohai_yaml: str, key: str, data: bytes) -> bool:
        """Keep `data` beside the project's plan (replacing its other attachments: `key` names the
        inputs it was derived from, and only the current ones are wanted); False when the project has
        no entry (too fresh to trust, or broken) and nothing was kept."""
        entry = self._entries.get(valohai_yaml)
        if entry is None or len(data) > INLINE_LIMIT:
            return False
        if entry[4].get(key) != data:
            self._entries[valohai_yaml] = (*entry[:4], {key: data})
            self._changed = True
        return True

    def save(self, *, complete: bool) -> None:
        """Write the index if it changed; `complete`: every project was looked up, so the entries of
        the others (deleted, moved or now ignored) are dropped."""
        if complete and self._entries.keys() - self._seen:
            self._entries = {path: entry for path, entry in self._entries.items() if path in self._seen}
            self._changed = True
        if self._changed:
            pickle_cache.write(self._path, pickle_cache.dumps(self._entries))
            self._changed = False


def _stamp(valohai_yaml: str, sidecar: str) -> Stamp | None:
    now = time.time_ns()
    try:
        main = os.stat(valohai_yaml)
        try:
            beside: os.stat_result | None = os.stat(sidecar)
        except FileNotFoundError:
            beside = None
    except OSError:
        return None
    if any(s is not None and now - s.st_mtime_ns < RACY_NS for s in (main, beside)):
        return None
    return _file_stat(main), _file_stat(beside) if beside is not None else None


def _file_stat(s: os.stat_result) -> FileStat:
    return s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns
