"""The project's code as a node sees it: which files of the project folder make `/valohai/repository`.

One selection serves the execution work dir's copy, the reuse key's content hash and a served
deployment's copy, so what a node runs, what its cache key covers and what an endpoint serves never
disagree. Left out: `DEFAULT_IGNORE` (version control, caches, virtualenvs) and whatever the
project's `.vhignore` excludes. Valohai's `.vhignore` has gitignore syntax (`!` negation, last rule
wins) and only the root file counts (valohai-cli reads it with gitignorant); `pathspec`'s
`GitIgnoreSpec` implements that syntax. As in git, an excluded folder is not entered, so a `!` rule
cannot bring back a file below it. Symlinks are entries of their own, never followed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from valohai_airflow.errors import ValohaiAirflowError

DEFAULT_IGNORE: tuple[str, ...] = (".git", "__pycache__", "*.pyc", ".valohai", ".venv", ".mypy_cache")
VHIGNORE = ".vhignore"


class VhignoreError(ValohaiAirflowError):
    """A `.vhignore` line that is not a gitignore pattern."""


@dataclass(frozen=True)
class RepositoryRules:
    """What to leave out of a project folder's copy."""

    root: Path
    spec: pathspec.GitIgnoreSpec | None
    ignore: Sequence[str] = DEFAULT_IGNORE

    @classmethod
    def load(cls, root: Path, ignore: Sequence[str] = DEFAULT_IGNORE) -> RepositoryRules:
        """The rules of `root`, with its `.vhignore` when there is one (a bad line: file:line)."""
        path = root / VHIGNORE
        if not path.is_file():
            return cls(root, None, ignore)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise VhignoreError(f"{path}: cannot read it ({error})") from error
        for number, line in enumerate(lines, start=1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except (ValueError, re.error) as error:
                raise VhignoreError(
                    f"{path}:{number}: {line!r} is not a gitignore pattern ({error}); "
                    "fix or remove the line (see https://git-scm.com/docs/gitignore#_pattern_format)"
                ) from error
        return cls(root, pathspec.GitIgnoreSpec.from_lines(lines), ignore)

    def by_default(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.ignore)

    def by_vhignore(self, relative: str, is_dir: bool) -> bool:
        """`relative`: a POSIX path below the root; a folder is matched as `dir/`, as git does."""
        return self.spec is not None and self.spec.match_file(f"{relative}/" if is_dir else relative)

    def walk(self) -> Iterator[tuple[str, Path]]:
        """(relative POSIX path, path) of every file and symlink kept, excluded folders not entered."""
        for folder, dirs, files in os.walk(self.root):
            base = Path(folder)
            kept_dirs = []
            for name in sorted(dirs):
                path = base / name
                relative = path.relative_to(self.root).as_posix()
                if path.is_symlink():
                    files.append(name)  # a link to a folder is an entry, never followed
                elif not self.by_default(name) and not self.by_vhignore(relative, True):
                    kept_dirs.append(name)
            dirs[:] = kept_dirs
            for name in files:
                path = base / name
                relative = path.relative_to(self.root).as_posix()
                if not self.by_default(name) and not self.by_vhignore(relative, False):
                    yield relative, path

    def copy(self, dest: Path) -> list[str]:
        """Copy the kept files to `dest` (symlinks as links); returns what `.vhignore` left out at the
        top of each excluded branch (a folder once, not each file in it)."""
        excluded: list[str] = []

        def ignored(folder: str, names: list[str]) -> set[str]:
            base = Path(folder)
            out = set()
            for name in names:
                path = base / name
                is_dir = path.is_dir() and not path.is_symlink()
                relative = path.relative_to(self.root).as_posix()
                if self.by_default(name):
                    out.add(name)
                elif self.by_vhignore(relative, is_dir):
                    out.add(name)
                    excluded.append(f"{relative}/" if is_dir else relative)
            return out

        shutil.copytree(self.root, dest, symlinks=True, ignore=ignored)
        return sorted(excluded)


def excluded_summary(excluded: Sequence[str], shown: int = 5) -> str:
    """A log line naming what `.vhignore` kept out of the copy."""
    names = ", ".join(excluded[:shown]) + (
        f" and {len(excluded) - shown} more" if len(excluded) > shown else ""
    )
    return f"{VHIGNORE}: not copied into /valohai/repository: {names}"
