"""Where the projects are: every valohai.yaml below a folder, honouring `.airflowignore`."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path

VALOHAI_YAML = "valohai.yaml"
SKIP_DIRS = {".git", "__pycache__", ".venv", "node_modules", ".valohai"}


def _ignore_patterns(folder: Path) -> list[str]:
    ignore_file = folder / ".airflowignore"
    if not ignore_file.is_file():
        return []
    patterns: list[str] = []
    for line in ignore_file.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            patterns.append(line)
    return patterns


def _ignored(relative: str, patterns: list[str], syntax: str) -> bool:
    for pattern in patterns:
        if syntax == "regexp":
            if re.search(pattern, relative):
                return True
        elif fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern.rstrip("/") + "/*"):
            return True
    return False


def find_valohai_yamls(dags_folder: Path, ignore_syntax: str = "glob") -> Iterator[Path]:
    """Every valohai.yaml below the dags folder, honouring `.airflowignore` files on the way down."""
    root = dags_folder.resolve()
    inherited: dict[Path, list[str]] = {}
    for current, dirnames, filenames in os.walk(root):
        here = Path(current)
        patterns = inherited.get(here, []) + _ignore_patterns(here)
        keep = []
        for name in sorted(dirnames):
            relative = (here / name).relative_to(root).as_posix()
            if name in SKIP_DIRS or _ignored(relative, patterns, ignore_syntax):
                continue
            inherited[here / name] = patterns
            keep.append(name)
        dirnames[:] = keep
        if VALOHAI_YAML in filenames:
            relative = (here / VALOHAI_YAML).relative_to(root).as_posix()
            if not _ignored(relative, patterns, ignore_syntax):
                yield here / VALOHAI_YAML


def project_name_for(valohai_yaml: Path, dags_folder: Path) -> str:
    relative = valohai_yaml.parent.resolve().relative_to(dags_folder.resolve())
    return relative.as_posix().replace("/", "__") if relative.parts else dags_folder.resolve().name
