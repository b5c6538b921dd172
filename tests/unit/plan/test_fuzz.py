"""Seeded mutants of the shape fixtures (and of the corpus, when it is there) through the loader's
entry point, compile_project: a broken file is always the project's error type, every error points
at a line and column, echoed values are cut, and nothing hangs.

The mutants come from hypothesis with a fixed seed (`derandomize`) and no example database, so every
run tries the same 300 files; a failure is shrunk to its fewest and smallest mutations. The work per
mutant is bounded by the files' size; the only time bound is a generous guard against a hang.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cases import CORPUS_DIR, HAVE_CORPUS, SHAPES_DIR
from valohai_airflow.loading.project import clear_cache, compile_project
from valohai_airflow.plan.model import ProjectPlan
from valohai_airflow.spec.diagnostics import ValohaiSpecError

MUTANTS = 300
LONGEST_MESSAGE = 2_000  # every echoed value is cut to about 200 characters
SOURCES = sorted(SHAPES_DIR.glob("*.yaml")) + (sorted(CORPUS_DIR.glob("**/*.yaml")) if HAVE_CORPUS else [])
TEXTS = [path.read_bytes() for path in SOURCES]

_CONTROL = [bytes([c]) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]
_INVALID_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]
_SCALAR = re.compile(rb"(?<=: )[^\s{}\[\],#&*!|>'\"%@`][^\n#]*")


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _flip(data: bytes, at: int, value: int) -> bytes:
    if not data:
        return bytes([value])
    at %= len(data)
    return data[:at] + bytes([data[at] ^ value]) + data[at + 1 :]


def _delete_line(data: bytes, at: int, _: int) -> bytes:
    lines = _lines(data)
    del lines[at % len(lines)]
    return b"\n".join(lines)


def _duplicate_line(data: bytes, at: int, _: int) -> bytes:
    lines = _lines(data)
    at %= len(lines)
    return b"\n".join(lines[: at + 1] + lines[at:])


def _insert(choices: list[bytes]) -> Callable[[bytes, int, int], bytes]:
    def insert(data: bytes, at: int, value: int) -> bytes:
        at %= len(data) + 1
        return data[:at] + choices[value % len(choices)] + data[at:]

    return insert


def _swap_scalars(data: bytes, at: int, value: int) -> bytes:
    found = list(_SCALAR.finditer(data))
    if len(found) < 2:
        return data
    first, second = sorted((found[at % len(found)], found[value % len(found)]), key=lambda m: m.start())
    if first.end() > second.start():
        return data
    return (
        data[: first.start()]
        + second.group()
        + data[first.end() : second.start()]
        + first.group()
        + data[second.end() :]
    )


def _nest(data: bytes, at: int, value: int) -> bytes:
    """A flow value nested 40 to 100 levels deep in place of a scalar (the loader stops at 64)."""
    found = list(_SCALAR.finditer(data))
    if not found:
        return data
    match = found[at % len(found)]
    depth = 40 + value % 61
    return data[: match.start()] + b"[" * depth + b"x" + b"]" * depth + data[match.end() :]


def _huge_scalar(data: bytes, at: int, value: int) -> bytes:
    found = list(_SCALAR.finditer(data))
    if not found:
        return data
    match = found[at % len(found)]
    return data[: match.start()] + bytes([0x61 + value % 26]) * 100_000 + data[match.end() :]


def _indent(data: bytes, at: int, value: int) -> bytes:
    lines = _lines(data)
    at %= len(lines)
    lines[at] = b" " * (value % 5) + lines[at] if value % 2 else lines[at].lstrip(b" ")
    return b"\n".join(lines)


def _truncate(data: bytes, at: int, _: int) -> bytes:
    return data[: at % (len(data) + 1)]


MUTATIONS: dict[str, Callable[[bytes, int, int], bytes]] = {
    "flip": _flip,
    "delete-line": _delete_line,
    "duplicate-line": _duplicate_line,
    "control": _insert(_CONTROL),
    "invalid-utf8": _insert(_INVALID_UTF8),
    "swap-scalars": _swap_scalars,
    "nest": _nest,
    "huge-scalar": _huge_scalar,
    "indent": _indent,
    "truncate": _truncate,
}

_MUTATION = st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 1 << 24), st.integers(1, 255))


def mutant(source: int, mutations: list[tuple[str, int, int]]) -> bytes:
    data = TEXTS[source]
    for name, at, value in mutations:
        data = MUTATIONS[name](data, at, value)
    return data


@contextmanager
def _hang_guard(seconds: int) -> Iterator[None]:
    def fail(*_: object) -> None:
        raise AssertionError(f"the fuzzer is still running after {seconds} s: a mutant hangs")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check(folder: Path, data: bytes) -> ProjectPlan | ValohaiSpecError:
    """Compile `data` as the loader does; only the project's error type may come out, and located."""
    path = folder / "valohai.yaml"
    path.write_bytes(data)
    clear_cache()
    try:
        return compile_project(path, project_name="fuzzed")
    except ValohaiSpecError as error:
        assert error.diagnostics
        for diagnostic in error.diagnostics:
            where = diagnostic.location
            assert where.line >= 1 and where.column >= 1, str(diagnostic)[:500]
            assert len(diagnostic.message) <= LONGEST_MESSAGE, str(diagnostic)[:500]
        return error


def test_mutants_are_plans_or_located_errors(tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("fuzzed")
    outcomes: dict[str, int] = {"plan": 0, "error": 0}

    @settings(
        max_examples=MUTANTS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.integers(0, len(TEXTS) - 1), st.lists(_MUTATION, min_size=1, max_size=3))
    def compiled(source: int, mutations: list[tuple[str, int, int]]) -> None:
        result = check(folder, mutant(source, mutations))
        outcomes["plan" if isinstance(result, ProjectPlan) else "error"] += 1

    with _hang_guard(900):
        compiled()
    assert outcomes["error"] >= MUTANTS // 3 and outcomes["plan"] >= 1, outcomes
