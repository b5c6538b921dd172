"""What every benchmark shares: paths, the result row, and which corpus files compile."""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("VALOHAI_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))


HEADER = (
    "| benchmark | median | baseline median | ratio to baseline | target | note |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.2f} ms"


@dataclass(frozen=True)
class Row:
    """One measured line. `ratio` is time ÷ baseline time unless the note says it is a throughput
    ratio (baseline time ÷ time, higher is better)."""

    name: str
    seconds: float
    ratio: float
    note: str = ""
    target: str = ""
    baseline_seconds: float | None = None

    def markdown(self) -> str:
        return (
            f"| {self.name} | {duration(self.seconds)} | {duration(self.baseline_seconds)} | "
            f"{self.ratio:.2f}× | {self.target} | {self.note} |"
        )


def alternate(
    baseline: Callable[[], object],
    subject: Callable[[], object],
    repeat: int,
    *,
    reset: Callable[[], object] | None = None,
) -> tuple[float, float]:
    """Median seconds of (baseline, subject), run in turns so both see the same machine state.

    The order flips every round (a warm page cache or a busy neighbour must not favour one side);
    `reset` runs untimed after every single run (removing what the run wrote)."""
    times = interleave({"baseline": baseline, "subject": subject}, repeat, reset=reset)
    return statistics.median(times["baseline"]), statistics.median(times["subject"])


def interleave(
    runs: Mapping[str, Callable[[], object]], repeat: int, *, reset: Callable[[], object] | None = None
) -> dict[str, list[float]]:
    """Seconds of every run in every round, for several contenders measured side by side: each
    round runs all of them, in the given order and reversed every other round (`alternate`'s rule
    for two); `reset` runs untimed after every single run."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs.items())
    for round_ in range(repeat):
        for label, fn in order if round_ % 2 == 0 else reversed(order):
            started = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - started)
            if reset is not None:
                reset()
    return times


def round_ratios(baseline: list[float], subject: list[float]) -> str:
    """The spread of a throughput ratio over the rounds (baseline ÷ subject, each round's pair)."""
    ratios = [b / s for b, s in zip(baseline, subject, strict=True)]
    return f"rounds {min(ratios):.2f}–{max(ratios):.2f}×"


@functools.cache
def corpus_files_that_compile() -> list[Path]:
    from valohai_airflow.loading.project import compile_project
    from valohai_airflow.spec.diagnostics import ValohaiSpecError

    good = []
    for path in sorted(CORPUS_DIR.glob("*.yaml")):
        try:
            compile_project(path)
        except ValohaiSpecError:
            continue
        good.append(path)
    return good


@contextlib.contextmanager
def quiet(log_file: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so Airflow's structlog lines and
    Docker output too) to `log_file` while measuring; the table stays readable."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
