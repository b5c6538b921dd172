"""Which valohai.yaml files Airflow would see: Airflow's own walk of the dags folder, so
`.airflowignore` (glob or regexp syntax, as `[core] dag_ignore_file_syntax` says) means here
exactly what it means for DAG files.

The loader runs this on every parse of the dags folder. Airflow's walk resolves and matches every
path against the ignore rules in Python (about 75 µs a folder); a tree with no `.airflowignore`
and no symlinked folder has no rules to apply and no loop to detect, so a plain listing gives the
same files, and Airflow's walk is used whenever either is present.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow._shared.module_loading import find_path_from_directory
from airflow.configuration import conf

from valohai_airflow.loading.dags_folder import valohai_yamls

IGNORE_FILE = ".airflowignore"


def find_valohai_yamls(folder: str | Path) -> list[Path]:
    files = _plain_listing(folder)
    if files is None:
        syntax = conf.get("core", "dag_ignore_file_syntax", fallback="glob") or "glob"
        files = list(find_path_from_directory(str(folder), IGNORE_FILE, syntax))
    return valohai_yamls(files)


def _plain_listing(folder: str | Path) -> list[str] | None:
    """Every file below `folder` as Airflow's walk names it; None when there is an ignore file, a
    symlinked folder or an unreadable one (Airflow's rules, loop checks and error handling decide)."""
    files: list[str] = []
    pending = [os.fspath(folder)]
    try:
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.name == IGNORE_FILE:
                        return None
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_symlink() and entry.is_dir():
                        return None
                    else:
                        files.append(entry.path)
    except OSError:
        return None
    return files
