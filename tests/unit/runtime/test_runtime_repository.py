"""The project's files as a node sees them: `.vhignore` (gitignore syntax) on top of the defaults,
for the work dir copy, the reuse key and a served deployment's tree alike (real folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from valohai_airflow.runtime.ids import ExecutionKey
from valohai_airflow.runtime.repository import RepositoryRules, VhignoreError
from valohai_airflow.runtime.reuse import repository_hash
from valohai_airflow.runtime.workdir import create_workdir

KEY = ExecutionKey("dag", "run", "train")
VHIGNORE = """\
# data comes in as inputs
data/
*.ckpt
!keep.ckpt
/notes.txt
"""


def project(root: Path, vhignore: str | None = VHIGNORE) -> Path:
    for relative, text in {
        "train.py": "print('hi')\n",
        "data/big.bin": "x" * 1000,
        "data/keep.ckpt": "in an excluded folder: stays out",
        "src/data/inner.txt": "a folder named data below the root: `data/` matches it too",
        "model.ckpt": "ckpt",
        "keep.ckpt": "negated",
        "notes.txt": "root only",
        "src/notes.txt": "not the root one",
        ".git/HEAD": "ref",
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    if vhignore is not None:
        (root / ".vhignore").write_text(vhignore)
    return root


KEPT = [".vhignore", "keep.ckpt", "src/notes.txt", "train.py"]


def test_the_copy_and_the_walk_keep_the_same_files(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    assert [relative for relative, _ in sorted(RepositoryRules.load(root).walk())] == KEPT
    work = create_workdir(tmp_path / "work", KEY, root)
    copied = sorted(
        p.relative_to(work.repository).as_posix() for p in work.repository.rglob("*") if p.is_file()
    )
    assert copied == KEPT
    assert work.excluded == ("data/", "model.ckpt", "notes.txt", "src/data/")


def test_without_vhignore_only_the_defaults_apply(tmp_path: Path) -> None:
    root = project(tmp_path / "p", vhignore=None)
    work = create_workdir(tmp_path / "work", KEY, root)
    assert (work.repository / "data" / "big.bin").is_file() and not (work.repository / ".git").exists()
    assert work.excluded == ()


def test_the_reuse_key_ignores_what_vhignore_excludes(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    before = repository_hash(root)
    (root / "data" / "big.bin").write_text("changed")
    (root / "data" / "new.bin").write_text("new")
    (root / "model.ckpt").write_text("changed")
    assert repository_hash(root) == before
    (root / "keep.ckpt").write_text("changed")
    assert repository_hash(root) != before
    (root / ".vhignore").write_text("")
    assert repository_hash(root) != repository_hash(project(tmp_path / "q"))


def test_a_symlinked_folder_is_one_entry_never_followed(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    walked = dict(RepositoryRules.load(root).walk())
    assert walked["elsewhere"].is_symlink() and not any(k.startswith("elsewhere/") for k in walked)


@pytest.mark.parametrize(("line", "number"), [("!", 2), ("[z-a]", 2)])
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: str, number: int) -> None:
    root = project(tmp_path / "p", vhignore=f"data/\n{line}\n")
    with pytest.raises(VhignoreError) as raised:
        RepositoryRules.load(root)
    assert str(raised.value).startswith(f"{root / '.vhignore'}:{number}: {line!r} is not a gitignore pattern")
