"""Which folder a loader file builds the projects of: the root of the DAG bundle it is parsed from.

With the dags folder (Airflow's default `dags-folder` bundle) that is `[core] dags_folder`. Under a
DAG bundle of another kind, a Git bundle for one, the DAG processor parses the loader file in the
bundle's checkout (`<storage>/<bundle>/tracking_repo`) and a worker in the checkout of the version
its run started with (`<storage>/<bundle>/versions/<commit>`); `[core] dags_folder` is somewhere else
then. Airflow tells a DAG file nothing but its path, and puts the bundle root on `sys.path` before it
imports the file (`BundleDagBag`, so that a DAG file can import modules of its bundle). So the root
is the innermost of the dags folder and the `sys.path` entries that holds the loader file, or the
loader file's own folder when none does. A project in a checkout is named by its path below the
bundle root, the same in every version, and its plan, folder index and docs are cached by its
absolute path, the version's own folder: two versions never share a cache entry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def bundle_root(loader_file: str | os.PathLike[str], dags_folder: str, import_roots: Iterable[str]) -> Path:
    """The folder below which `loader_file` finds its projects (see the module docstring)."""
    folder = os.path.dirname(os.path.abspath(loader_file))
    best: str | None = None
    for candidate in (dags_folder, *import_roots):
        if not candidate or not os.path.isabs(candidate):  # '' and relative entries name the cwd
            continue
        root = os.path.normpath(candidate)
        holds = folder == root or folder.startswith(root.rstrip(os.sep) + os.sep)
        if holds and (best is None or len(root) > len(best)):
            best = root
    return Path(best if best is not None else folder)
