"""What every benchmark shares: paths, the result row, and which corpus files compile."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("VALOHAI_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))


@dataclass(frozen=True)
class Row:
    name: str
    seconds: float
    ratio: float
    note: str = ""
    target: str = ""

    def markdown(self) -> str:
        return f"| {self.name} | {self.seconds * 1000:.1f} ms | {self.ratio:.2f}× | {self.target} | {self.note} |"


@functools.cache
def corpus_files_that_compile() -> list[Path]:
    from valohai_airflow.plan.project import compile_project
    from valohai_airflow.spec.diagnostics import ValohaiSpecError

    good = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        try:
            compile_project(path)
        except ValohaiSpecError:
            continue
        good.append(path)
    return good
